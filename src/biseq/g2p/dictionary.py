"""A pronouncing dictionary: word -> every listed pronunciation, in the dictionary's order.

Reads the CMU dictionary format (``word PH1 PH2 ...``; alternates as ``word(2)``; ``#`` and ``;;;``
comments), plain or gzipped, or ``word<TAB>PH1 PH2`` lines. Keys are lower case. Loading the 135,166 lines
of the CMU dictionary takes about 0.2 s and imports nothing heavy, so a dictionary word is
answered without Keras or JAX.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from biseq.corpus import DataError

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

        Raises:
            DataError: naming the file and line of a malformed entry, or an unreadable file.
        """
        path = Path(path)
        try:
            if path.suffix == ".gz":
                with gzip.open(path, "rt", encoding="utf-8") as f:
                    text = f.read()
            else:
                text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"{path}: pronouncing dictionary not found") from None
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        except (OSError, EOFError) as err:
            raise DataError(f"{path}: cannot read the pronouncing dictionary ({err})") from None
        return cls(_parse(text.splitlines(), name=str(path)))

    def lookup(self, word: str) -> list[str]:
        """Every pronunciation of ``word`` (case-insensitive), first listed first; ``[]`` if absent."""
        return list(self._prons.get(word.lower(), ()))

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word.lower() in self._prons

    def __len__(self) -> int:
        return len(self._prons)

    def __iter__(self) -> Iterator[str]:
        return iter(self._prons)


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
