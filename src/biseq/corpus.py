"""Corpus readers and the deterministic train/dev/test split.

A corpus is a list of :class:`Entry`: one source token sequence with all its
reference target sequences (a word with several pronunciations is one entry
with several references, so scoring can pick the closest).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.resources
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from biseq.config import DataConfig

_ALTERNATE = re.compile(r"^(.+)\((\d+)\)$")
_STRESS = re.compile(r"(?<=[A-Z])[0-2]$")


class DataError(ValueError):
    """Malformed input data; the message names the file, the line and the problem."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One source with every reference target for it.

    Attributes:
        source: source tokens, e.g. ``("c", "a", "t")``.
        targets: one or more reference token sequences, e.g. ``(("K", "AE", "T"),)``.
    """

    source: tuple[str, ...]
    targets: tuple[tuple[str, ...], ...]


def split_tokens(text: str, how: str) -> tuple[str, ...]:
    """Split ``text`` into characters (``"char"``) or space-separated tokens (``"space"``).

    ``"sentencepiece"`` also splits into words: the vocabulary's subword model makes them pieces.
    """
    if how == "char":
        return tuple(text)
    return tuple(text.split())


def _group(pairs: Iterable[tuple[tuple[str, ...], tuple[str, ...]]]) -> list[Entry]:
    grouped: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for source, target in pairs:
        refs = grouped.setdefault(source, [])
        if target not in refs:
            refs.append(target)
    return [Entry(source, tuple(refs)) for source, refs in grouped.items()]


def _open_lines(path: Path) -> list[str]:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8-sig") as f:
                return f.read().splitlines()
        return path.read_text(encoding="utf-8-sig").splitlines()  # -sig: a leading BOM is not part of a word
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from None


def parse_cmudict(lines: Sequence[str], *, name: str, strip_stress: bool = True, first_line: int = 1) -> list[Entry]:
    """Parse CMU dictionary lines: ``word PH1 PH2 ...``; ``word(2)`` alternates; ``# comments``.

    Source tokens are the characters of the word; targets are the phones, with
    stress digits removed when ``strip_stress``. ``first_line``: the file's number of ``lines[0]``.
    """
    pairs = []
    for number, raw in enumerate(lines, start=first_line):
        line = raw.split("#", 1)[0].strip() if not raw.startswith("#") else ""
        if not line:
            continue
        fields = line.split()
        if len(fields) < 2:
            raise DataError(
                f"{name}, line {number}: expected 'WORD PH1 PH2 ...' (a word and at least one phone), "
                f"found {raw.strip()!r}"
            )
        word = fields[0]
        alternate = _ALTERNATE.match(word)
        if alternate:
            word = alternate.group(1)
        phones = fields[1:]
        if strip_stress:
            phones = [_STRESS.sub("", p) for p in phones]
        pairs.append((tuple(word), tuple(phones)))
    return _group(pairs)


def parse_tsv(lines: Sequence[str], *, name: str, source_split: str = "space",
              target_split: str = "space", lowercase: bool = False, first_line: int = 1) -> list[Entry]:
    """Parse ``source<TAB>target`` lines; repeated sources collect several references.

    ``first_line``: the file's number of ``lines[0]`` (error messages name it).
    """
    pairs = []
    for number, raw in enumerate(lines, start=first_line):
        if not raw.strip():
            continue
        fields = raw.rstrip("\r\n").split("\t")
        if len(fields) != 2:
            raise DataError(
                f"{name}, line {number}: expected 'source<TAB>target' (exactly one tab), "
                f"found {len(fields) - 1} tab(s) in {raw.strip()!r}"
            )
        source_text, target_text = fields
        if lowercase:
            source_text = source_text.lower()
        source = split_tokens(source_text.strip(), source_split)
        target = split_tokens(target_text.strip(), target_split)
        if not source or not target:
            side = "source" if not source else "target"
            raise DataError(f"{name}, line {number}: the {side} side is empty in {raw.strip()!r}")
        pairs.append((source, target))
    return _group(pairs)


def transposed(entries: Sequence[Entry]) -> list[Entry]:
    """Each (source, target) pair the other way round; a target with several sources gets them all as references."""
    return _group((target, e.source) for e in entries for target in e.targets)


def parse_lines(lines: Sequence[str], *, config: DataConfig, name: str, fmt: str | None = None,
                first_line: int = 1) -> list[Entry]:
    """Entries of a file's ``lines`` in ``fmt`` (default ``config.format``), transposed when ``config.transpose``."""
    if (fmt or config.format) == "cmudict":
        entries = parse_cmudict(lines, name=name, strip_stress=config.strip_stress, first_line=first_line)
    else:
        column_splits = (config.target_split, config.source_split) if config.transpose else \
            (config.source_split, config.target_split)
        entries = parse_tsv(lines, name=name, source_split=column_splits[0], target_split=column_splits[1],
                            lowercase=config.lowercase, first_line=first_line)
    return transposed(entries) if config.transpose else entries


def default_cmudict_path() -> Path:
    """The embedded CMU Pronouncing Dictionary (gzipped, BSD-style licence beside it)."""
    return Path(str(importlib.resources.files("biseq") / "resources" / "cmudict.dict.gz"))


def read_corpus(path: str | Path, *, config: DataConfig, fmt: str | None = None) -> list[Entry]:
    """Read a corpus file in the configured format; raises :class:`DataError` on bad input."""
    path = Path(path)
    entries = parse_lines(_open_lines(path), config=config, name=str(path), fmt=fmt)
    if not entries:
        raise DataError(f"{path}: no data (the file is empty or holds only comments)")
    return entries


def load_default_corpus(config: DataConfig) -> list[Entry]:
    """The corpus named by ``config.path``, or the embedded CMU dictionary when empty."""
    if config.path:
        return read_corpus(config.path, config=config)
    return read_corpus(default_cmudict_path(), config=config, fmt="cmudict")


def split_of(source: Sequence[str], *, seed: int, dev_fraction: float, test_fraction: float) -> str:
    """``"train"``, ``"dev"`` or ``"test"`` for a source, from a seeded md5 hash of it."""
    digest = hashlib.md5(f"{seed}\x00{' '.join(source)}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + dev_fraction:
        return "dev"
    return "train"


def split_corpus(entries: Sequence[Entry], config: DataConfig) -> dict[str, list[Entry]]:
    """Split entries into ``train``/``dev``/``test`` deterministically by source."""
    parts: dict[str, list[Entry]] = {"train": [], "dev": [], "test": []}
    for entry in entries:
        parts[split_of(entry.source, seed=config.split_seed, dev_fraction=config.dev_fraction,
                       test_fraction=config.test_fraction)].append(entry)
    return parts
