"""Word lists in, pronunciation dictionaries out: the files forced aligners and ASR recipes read.

Formats written by :func:`write_lexicon` (one line per pronunciation, best first per word):

``mfa``
    Montreal Forced Aligner dictionary with pronunciation probabilities:
    ``word<TAB>prob<TAB>ph1 ph2 ...``; the best pronunciation of a word has ``1.0`` and the
    others their probability relative to it, in ``[0.01, 1.0]`` (MFA's own convention).
``kaldi``
    Kaldi ``lexiconp.txt``: ``word prob ph1 ph2 ...``, ``0 < prob <= 1`` with the best at ``1.0``
    (``utils/dict_dir_add_pronprobs.sh --max-normalize``).
``tsv``
    ``word<TAB>ph1 ph2 ...``, which ``biseq train --data FILE`` reads back.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from biseq.atomic import replace_shared
from biseq.g2p import text as text_module

FORMATS = ("mfa", "kaldi", "tsv")
MIN_PROB = 0.01


class LexiconError(ValueError):
    """A word list cannot be read, or a lexicon cannot be written; the message names the file."""


def read_word_list(path: str | Path) -> list[str]:
    """The distinct words of a word list, in first-seen order (``"-"``: standard input).

    A line with one word is that word; a line with more is split as text (numbers spelled out),
    so a plain transcript works as a word list too.

    Raises:
        LexiconError: the file is missing or not UTF-8 text (the message gives the line).
    """
    if str(path) == "-":
        lines = sys.stdin.read().splitlines()
        name = "<stdin>"
    else:
        name = str(path)
        try:
            raw = Path(path).read_bytes()
        except OSError as err:
            raise LexiconError(f"{name}: cannot read the word list ({err.strerror or err})") from None
        try:
            lines = raw.decode("utf-8").splitlines()
        except UnicodeDecodeError as err:
            line = raw[: err.start].count(b"\n") + 1
            raise LexiconError(f"{name}:{line}: not UTF-8 text (byte {raw[err.start]:#04x}); save the word list "
                               "as UTF-8") from None
    seen: dict[str, None] = {}
    for line in lines:
        line = line.strip().lstrip("\ufeff")
        if not line:
            continue
        parts = line.split()
        single = text_module.fold(parts[0]) if len(parts) == 1 else ""
        found = text_module.words(line)
        for word in [single] if found == [single] else found:
            seen.setdefault(word, None)
    return list(seen)


def lexicon_lines(results: Iterable, *, fmt: str) -> list[str]:
    """The lines of a lexicon for :class:`~biseq.g2p.api.WordResult` s (words without a
    pronunciation are left out: every format requires at least one phone)."""
    if fmt not in FORMATS:
        raise LexiconError(f"unknown lexicon format {fmt!r}: expected one of {', '.join(FORMATS)}")
    lines: list[str] = []
    seen: set[tuple[str, str]] = set()
    for result in results:
        prons = [p for p in result.pronunciations if p.phones.strip()]
        if not prons:
            continue
        best = max(p.prob for p in prons) or 1.0
        for pron in prons:
            if (result.word, pron.phones) in seen:
                continue
            seen.add((result.word, pron.phones))
            relative = max(MIN_PROB, min(1.0, pron.prob / best))
            prob = "1.0" if relative >= 0.995 else f"{relative:.2f}"
            if fmt == "mfa":
                lines.append(f"{result.word}\t{prob}\t{pron.phones}")
            elif fmt == "kaldi":
                lines.append(f"{result.word} {prob} {pron.phones}")
            else:
                lines.append(f"{result.word}\t{pron.phones}")
    return lines


def write_lexicon(results: Iterable, *, fmt: str, out: str | Path | None = None) -> int:
    """Write the lexicon to ``out`` atomically (a temporary file renamed), or to stdout; returns lines."""
    lines = lexicon_lines(results, fmt=fmt)
    body = "".join(line + "\n" for line in lines)
    if out is None or str(out) == "-":
        sys.stdout.write(body)
        return len(lines)
    target = Path(out)
    if target.is_dir():
        raise LexiconError(f"{target}: is a directory; give a file name for the lexicon")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        replace_shared(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(lines)
