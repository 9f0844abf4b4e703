"""Text to ids and back for a trained model, as its training data was split: no Keras, no JAX.

:class:`TextCodec` is shared by :class:`biseq.transducer.Transducer` and the NumPy decoding path
(:class:`biseq.numpy_decoding.NumpyTransducer`); it needs ``config``, ``source_vocab``,
``target_vocab`` and ``_source_case`` set by the class that uses it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from biseq.config import Config
from biseq.corpus import split_tokens
from biseq.vocabulary import UNK, Vocabulary


def vocabulary_case(vocab: Vocabulary) -> str:
    """``lower`` or ``upper`` when every cased symbol past the specials has that case, else ``mixed``."""
    cased = [s for s in vocab.symbols[4:] if s.lower() != s.upper()]
    if cased and all(s == s.lower() for s in cased):
        return "lower"
    if cased and all(s == s.upper() for s in cased):
        return "upper"
    return "mixed"


class TextCodec:
    """Source text -> token sequences -> ids, and output tokens -> text; text in, text out.

    The text-level searches call ``predict_ids`` / ``predict_nbest_ids`` and read ``rescores``,
    which the class that uses this one provides.
    """

    config: Config
    source_vocab: Vocabulary
    target_vocab: Vocabulary
    _source_case: str

    def tokenize_source(self, text: str) -> tuple[str, ...]:
        """Split one input string the way the training data's sources were split.

        When every cased source symbol of the vocabulary is lower case (or upper case), the
        input is folded to that case, so ``Hello`` works for a model trained on ``hello``.
        """
        data = self.config.data
        if (data.format == "cmudict" and not data.transpose) or data.lowercase or self._source_case == "lower":
            text = text.lower()
        elif self._source_case == "upper":
            text = text.upper()
        return split_tokens(text.strip(), data.splits[0])

    def source_text(self, tokens: Sequence[str]) -> str:
        """Source tokens back to a display string (characters joined, or tokens with spaces)."""
        return ("" if self.config.data.splits[0] == "char" else " ").join(tokens)

    def encode_sources(self, sources: Sequence[Sequence[str]]) -> list[list[int]]:
        """Token sequences -> ids; unknown symbols become ``<unk>`` with one warning listing them."""
        empty = [i for i, s in enumerate(sources) if not s]
        if empty:
            raise ValueError(f"Input {empty[0] + 1} is empty; every input needs at least one symbol.")
        missing = self.source_vocab.unknown(t for s in sources for t in s)
        if missing:
            warnings.warn(f"Unknown source symbol(s) mapped to {UNK}: {missing}", UserWarning, stacklevel=3)
        return [self.source_vocab.encode(s, warn=False) for s in sources]

    def target_text(self, tokens: Sequence[str]) -> str:
        """Output tokens to a string (characters joined, or tokens with spaces)."""
        return ("" if self.config.data.splits[1] == "char" else " ").join(tokens)

    def predict_tokens(self, sources: Sequence[Sequence[str]], *, batch_size: int = 256) -> list[list[str]]:
        """Token sequences in, best output token sequences out."""
        if not sources:
            return []
        ids = self.predict_ids(self.encode_sources(sources), batch_size=batch_size)
        return [self.target_vocab.decode(row) for row in ids]

    def predict(self, texts: Sequence[str], *, batch_size: int = 256, beam_size: int = 1,
                length_penalty: float = 1.0) -> list[str]:
        """Strings in (e.g. words), strings out (e.g. space-separated phones); greedy or beam search."""
        if beam_size > 1 or self.rescores:
            return [n[0][0] if n else "" for n in self.predict_nbest(texts, beam_size=beam_size,
                                                                     length_penalty=length_penalty)]
        tokens = self.predict_tokens([self.tokenize_source(t) for t in texts], batch_size=batch_size)
        return [self.target_text(t) for t in tokens]

    def predict_nbest(self, texts: Sequence[str], *, beam_size: int, nbest: int = 1,
                      length_penalty: float = 1.0) -> list[list[tuple[str, float]]]:
        """Beam search: per input the ``nbest`` best ``(output string, score)``, best first."""
        sources = [self.tokenize_source(t) for t in texts]
        found = self.predict_nbest_ids(self.encode_sources(sources), beam_size=beam_size, nbest=nbest,
                                       length_penalty=length_penalty)
        return [[(self.target_text(self.target_vocab.decode(ids)), score) for ids, score in hyps] for hyps in found]
