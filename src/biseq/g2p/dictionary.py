"""A pronouncing dictionary: word -> every listed pronunciation, in the dictionary's order.

Reads the CMU dictionary format (``word PH1 PH2 ...``; alternates as ``word(2)``; ``#`` and ``;;;``
comments), plain or gzipped, or ``word<TAB>PH1 PH2`` lines. Keys are lower case. Parsing the 135,166
lines of the CMU dictionary takes about 0.2 s, loading its cached parse 0.06 s, and imports
nothing heavy, so a dictionary word is answered without Keras or JAX.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import marshal
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from biseq.compile_cache import cache_dir
from biseq.corpus import DataError

CACHED_BYTES = 64 * 1024  # smaller files parse in a few milliseconds: not worth a cache file
_ALTERNATE = re.compile(r"\(\d+\)$")
_STRESS = re.compile(r"(?<=[A-Za-z])[0-2](?= |$)")


def strip_stress(phones: str) -> str:
    """``"HH AH0 L OW1"`` -> ``"HH AH L OW"`` (CMU stress digits 0, 1, 2 after a vowel)."""
    return _STRESS.sub("", phones)


class PronouncingDictionary:
    """Word -> pronunciations (space-separated phones), every variant in the order listed.

    Args:
        entries: ``(word, phones)`` pairs; a word listed twice gets two variants.
    """

    def __init__(self, entries: Iterable[tuple[str, str]] = ()) -> None:
        self._prons: dict[str, list[str]] = {}
        for word, phones in entries:
            variants = self._prons.setdefault(word.lower(), [])
            if phones not in variants:
                variants.append(phones)

    @classmethod
    def read(cls, path: str | Path) -> PronouncingDictionary:
        """Read a CMU-format or TSV dictionary file (``.gz`` too).

        The parsed form of a file of ``CACHED_BYTES`` or more is kept in biseq's cache directory,
        named by the file's content hash, so the next process loads it in a third of the time (the
        CMU dictionary: 0.06 s instead of 0.19 s); a cache that cannot be read or written is
        passed over.

        Raises:
            DataError: naming the file and line of a malformed entry, or an unreadable file.
        """
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise DataError(f"{path}: pronouncing dictionary not found") from None
        except OSError as err:
            raise DataError(f"{path}: cannot read the pronouncing dictionary ({err.strerror or err})") from None
        cache = _cache_file(raw) if len(raw) >= CACHED_BYTES else None
        found = None if cache is None else _load_cached(cache)
        if found is not None:
            return found
        try:
            text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        except (OSError, EOFError) as err:
            raise DataError(f"{path}: cannot read the pronouncing dictionary ({err})") from None
        found = cls(_parse(text.splitlines(), name=str(path)))
        if cache is not None:
            _store_cached(cache, found._prons)
        return found

    def lookup(self, word: str) -> list[str]:
        """Every pronunciation of ``word`` (case-insensitive), first listed first; ``[]`` if absent."""
        return list(self._prons.get(word.lower(), ()))

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word.lower() in self._prons

    def __len__(self) -> int:
        return len(self._prons)

    def __iter__(self) -> Iterator[str]:
        return iter(self._prons)


def _cache_file(raw: bytes) -> Path:
    """Where the parsed form of a dictionary file with these bytes is kept (per Python, marshal's format)."""
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return cache_dir() / f"dictionary-{digest}-py{sys.version_info[0]}{sys.version_info[1]}.marshal"


def _load_cached(cache: Path) -> PronouncingDictionary | None:
    try:
        prons = marshal.loads(cache.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(prons, dict):
        return None
    found = PronouncingDictionary()
    found._prons = prons
    return found


def _store_cached(cache: Path, prons: dict[str, list[str]]) -> None:
    """Write atomically (a temporary file renamed); a cache that cannot be written is passed over."""
    tmp = None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=".dictionary-")
        with os.fdopen(fd, "wb") as out:
            out.write(marshal.dumps(prons))
        os.replace(tmp, cache)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(tmp)


def _parse(lines: list[str], *, name: str) -> Iterator[tuple[str, str]]:
    for number, raw in enumerate(lines, start=1):
        line = "" if raw.startswith(("#", ";;;")) else raw.split("#", 1)[0].strip()
        if not line:
            continue
        word, sep, phones = line.replace("\t", " ", 1).partition(" ")
        phones = " ".join(phones.split())
        if not sep or not phones:
            raise DataError(f"{name}, line {number}: expected 'WORD PH1 PH2 ...' (a word and at least one phone), "
                            f"found {raw.strip()[:80]!r}")
        yield _ALTERNATE.sub("", word), phones
