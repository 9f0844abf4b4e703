"""A trained system: config + vocabularies + model; text in, text out; save and load.

The parts: :class:`~biseq.scoring.ModelScoring` (teacher-forced log-probabilities) <-
:class:`~biseq.decoding.ModelDecoding` (searches over ids) <- :class:`Transducer` (text);
the model directory (files, atomic writes, checks on reading) is :mod:`biseq.model_dir`, whose
names are re-exported here.
"""

from __future__ import annotations

from pathlib import Path

from biseq.config import Config
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
from biseq.text_codec import TextCodec, vocabulary_case
from biseq.vocabulary import Vocabulary

__all__ = ["CONFIG_FILE", "KERAS_MEMBERS", "MODEL_FILE", "VOCAB_FILE", "WEIGHTS_FILE", "ModelDirError", "Transducer",
           "atomic_save_model", "atomic_write_text", "load_keras_file", "vocabulary_case"]


class Transducer(TextCodec, ModelDecoding):
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
