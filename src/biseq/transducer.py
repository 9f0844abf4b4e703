"""A trained system: config + vocabularies + model; text in, text out; save and load.

The parts: :class:`~biseq.scoring.ModelScoring` (teacher-forced log-probabilities) <-
:class:`~biseq.decoding.ModelDecoding` (searches over ids) <- :class:`Transducer` (text);
the model directory (files, atomic writes, checks on reading) is :mod:`biseq.model_dir`, whose
names are re-exported here.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from biseq.config import Config
from biseq.corpus import split_tokens
from biseq.decoding import ModelDecoding
from biseq.model import Seq2Seq
from biseq.model_dir import (
    CONFIG_FILE,
    KERAS_MEMBERS,
    MODEL_FILE,
    VOCAB_FILE,
    WEIGHTS_FILE,
    ModelDirError,
    atomic_save_model,
    atomic_write_text,
    build_from_weights,
    load_keras_file,
    read_model_dir,
    write_model_dir,
)
from biseq.vocabulary import UNK, Vocabulary

__all__ = ["CONFIG_FILE", "KERAS_MEMBERS", "MODEL_FILE", "VOCAB_FILE", "WEIGHTS_FILE", "ModelDirError", "Transducer",
           "atomic_save_model", "atomic_write_text", "load_keras_file", "vocabulary_case"]


def vocabulary_case(vocab: Vocabulary) -> str:
    """``lower`` or ``upper`` when every cased symbol past the specials has that case, else ``mixed``."""
    cased = [s for s in vocab.symbols[4:] if s.lower() != s.upper()]
    if cased and all(s == s.lower() for s in cased):
        return "lower"
    if cased and all(s == s.upper() for s in cased):
        return "upper"
    return "mixed"


class Transducer(ModelDecoding):
    """Sequence-to-sequence system for text.

    Decoding and scoring of id sequences come from :class:`~biseq.decoding.ModelDecoding`
    (``predict_ids``, ``predict_nbest_ids``, ``output_log_probs``, ...); this class adds text in
    and out, and save/load of a model directory (:mod:`biseq.model_dir`).

    Args:
        config: the run's :class:`~biseq.config.Config`.
        source_vocab, target_vocab: the vocabularies.
        model: a :class:`~biseq.model.Seq2Seq`; built from ``config`` when omitted.
    """

    def __init__(self, *, config: Config, source_vocab: Vocabulary, target_vocab: Vocabulary,
                 model: Seq2Seq | None = None) -> None:
        self.source_vocab = source_vocab
        super().__init__(config=config, target_vocab=target_vocab,
                         model=model or Seq2Seq(config=config.model, source_vocab_size=len(source_vocab),
                                                target_vocab_size=len(target_vocab), name="seq2seq"))
        self._source_case = vocabulary_case(source_vocab)

    # --- text <-> ids ----------------------------------------------------------------
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

    # --- text in, text out ------------------------------------------------------------
    def predict_tokens(self, sources: Sequence[Sequence[str]], *, batch_size: int = 256) -> list[list[str]]:
        """Token sequences in, best output token sequences out."""
        if not sources:
            return []
        ids = self.predict_ids(self.encode_sources(sources), batch_size=batch_size)
        return [self.target_vocab.decode(row) for row in ids]

    def target_text(self, tokens: Sequence[str]) -> str:
        """Output tokens to a string (characters joined, or tokens with spaces)."""
        return ("" if self.config.data.splits[1] == "char" else " ").join(tokens)

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

    # --- persistence ---------------------------------------------------------------------
    def save(self, directory: str | Path, *, weights_dtype: str = "") -> None:
        """Write ``model.keras``, ``vocab.json`` and ``config.json``, each atomically.

        ``weights_dtype="float16"``: the compact ``weights.npz`` instead of ``model.keras``, which
        :meth:`load` reads back as float32 into a network rebuilt from ``config.json``
        (see :func:`biseq.model_dir.write_model_dir`).
        """
        write_model_dir(Path(directory), config=self.config, source_vocab=self.source_vocab,
                        target_vocab=self.target_vocab, model=self.model, weights_dtype=weights_dtype)

    @classmethod
    def load(cls, directory: str | Path) -> Transducer:
        """Load a directory written by :meth:`save` (or by ``biseq train``).

        Raises:
            ModelDirError: naming the missing, unreadable or mismatched file.
        """
        directory = Path(directory)
        found = read_model_dir(directory)
        model = found.model or build_from_weights(
            lambda: Seq2Seq(config=found.config.model, source_vocab_size=len(found.source_vocab),
                            target_vocab_size=len(found.target_vocab), name="seq2seq"), directory / WEIGHTS_FILE)
        return cls(config=found.config, source_vocab=found.source_vocab, target_vocab=found.target_vocab,
                   model=model)
