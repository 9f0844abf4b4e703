"""Scores as pure functions on strings, all in percent.

A hypothesis is a string of space-separated tokens (``"K AE T"``); each source
has one or more reference strings. Against several references the closest one
(fewest edits) counts.

* WER (word error rate): share of hypotheses that match none of their references.
* PER (phone/token error rate): total edit distance to the closest references
  divided by those references' total length.
* exact match: 100 - WER.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein


@dataclasses.dataclass(frozen=True)
class Scores:
    """Corpus-level scores in percent, and the number of items scored."""

    wer: float
    per: float
    exact_match: float
    count: int

    def __str__(self) -> str:
        return f"WER {self.wer:.2f}%  PER {self.per:.2f}%  exact {self.exact_match:.2f}%  ({self.count} items)"


def closest_reference(hypothesis: str, references: Sequence[str]) -> tuple[int, int]:
    """``(edit distance, reference length)`` of the reference with the fewest token edits."""
    if not references:
        raise ValueError("Every hypothesis needs at least one reference.")
    hyp = hypothesis.split()
    best = None
    for ref in references:
        tokens = ref.split()
        candidate = (Levenshtein.distance(hyp, tokens), len(tokens))
        if best is None or candidate < best:
            best = candidate
    return best


def score(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> Scores:
    """WER, PER and exact match of ``hypotheses`` against lists of ``references``."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists.")
    if not hypotheses:
        raise ValueError("Nothing to score: no hypotheses.")
    errors = edits = length = 0
    for hyp, refs in zip(hypotheses, references, strict=True):
        distance, ref_len = closest_reference(hyp, refs)
        edits += distance
        length += ref_len
        errors += distance > 0
    wer = 100.0 * errors / len(hypotheses)
    per = 100.0 * edits / max(length, 1)
    return Scores(wer=wer, per=per, exact_match=100.0 - wer, count=len(hypotheses))


def word_error_rate(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Percent of hypotheses matching none of their references."""
    return score(hypotheses, references).wer


def phone_error_rate(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Edit distance to the closest references over their length, in percent."""
    return score(hypotheses, references).per
