"""Scores as pure functions on strings, all in percent.

A hypothesis is a string of space-separated tokens (``"K AE T"``); each source
has one or more reference strings. Against several references the closest one
(fewest edits) counts.

* WER (word error rate): share of hypotheses that match none of their references.
* PER (phone/token error rate): total edit distance to the closest references
  divided by those references' total length.
* exact match: 100 - WER.

BLEU and chrF (:func:`text_scores`) come from sacrebleu, on detokenized text, for translation
and normalisation tasks; a source's several references are sacrebleu's several reference streams.
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


@dataclasses.dataclass(frozen=True)
class TextScores:
    """Corpus BLEU and chrF (sacrebleu), with sacrebleu's signatures for reporting."""

    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str

    def __str__(self) -> str:
        return f"BLEU {self.bleu:.2f}  chrF {self.chrf:.2f}  (sacrebleu {self.bleu_signature}; {self.chrf_signature})"


def text_scores(hypotheses: Sequence[str], references: Sequence[Sequence[str]], *,
                characters: bool = False) -> TextScores:
    """Corpus BLEU and chrF of detokenized ``hypotheses`` against one or more ``references`` each.

    ``references[i]`` are the references of ``hypotheses[i]``; their number may differ between
    items (sacrebleu's variable number of references). ``characters``: BLEU over characters
    (sacrebleu's ``char`` tokenizer) for outputs that are single words spelled letter by letter,
    where word n-grams would leave BLEU at 0.
    """
    from sacrebleu.metrics import BLEU, CHRF  # imported on use: ~0.2 s, only `biseq evaluate` needs it

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists.")
    if not hypotheses:
        raise ValueError("Nothing to score: no hypotheses.")
    if any(not refs for refs in references):
        raise ValueError("Every hypothesis needs at least one reference.")
    width = max(len(refs) for refs in references)
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]
    bleu, chrf = BLEU(tokenize="char" if characters else None), CHRF()
    bleu_score = bleu.corpus_score(list(hypotheses), streams).score
    chrf_score = chrf.corpus_score(list(hypotheses), streams).score
    return TextScores(bleu=bleu_score, chrf=chrf_score, bleu_signature=str(bleu.get_signature()),
                      chrf_signature=str(chrf.get_signature()))


def word_error_rate(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Percent of hypotheses matching none of their references."""
    return score(hypotheses, references).wer


def phone_error_rate(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Edit distance to the closest references over their length, in percent."""
    return score(hypotheses, references).per
