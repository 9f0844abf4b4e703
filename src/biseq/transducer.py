"""A trained system: config + vocabularies + model; text in, text out; save and load.

A saved model directory holds ``model.keras`` (weights and architecture),
``vocab.json`` and ``config.json``: everything needed to load it in a new process.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from biseq.batching import bucket_width, pad_ids
from biseq.config import Config
from biseq.corpus import split_tokens
from biseq.model import Seq2Seq
from biseq.search import GreedySearch
from biseq.vocabulary import UNK, Vocabulary

MODEL_FILE, VOCAB_FILE, CONFIG_FILE = "model.keras", "vocab.json", "config.json"


class ModelDirError(ValueError):
    """A model directory is missing or incomplete."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def atomic_save_model(model: keras.Model, path: Path) -> None:
    """``model.save`` to a temporary ``.keras`` file, then ``os.replace`` onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".keras")
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class Transducer:
    """Sequence-to-sequence system for text.

    Args:
        config: the run's :class:`~biseq.config.Config`.
        source_vocab, target_vocab: the vocabularies.
        model: a :class:`~biseq.model.Seq2Seq`; built from ``config`` when omitted.
    """

    def __init__(self, *, config: Config, source_vocab: Vocabulary, target_vocab: Vocabulary,
                 model: Seq2Seq | None = None) -> None:
        self.config, self.source_vocab, self.target_vocab = config, source_vocab, target_vocab
        self.model = model or Seq2Seq(config=config.model, source_vocab_size=len(source_vocab),
                                       target_vocab_size=len(target_vocab), name="seq2seq")
        self._greedy: GreedySearch | None = None

    # --- text <-> ids ----------------------------------------------------------------
    def tokenize_source(self, text: str) -> tuple[str, ...]:
        """Split one input string the way the training data's sources were split."""
        data = self.config.data
        if data.format == "cmudict" or data.lowercase:
            text = text.lower()
        return split_tokens(text.strip(), data.source_split)

    def source_text(self, tokens: Sequence[str]) -> str:
        """Source tokens back to a display string (characters joined, or tokens with spaces)."""
        return ("" if self.config.data.source_split == "char" else " ").join(tokens)

    def encode_sources(self, sources: Sequence[Sequence[str]]) -> list[list[int]]:
        """Token sequences -> ids; unknown symbols become ``<unk>`` with one warning listing them."""
        missing = self.source_vocab.unknown(t for s in sources for t in s)
        if missing:
            warnings.warn(f"Unknown source symbol(s) mapped to {UNK}: {missing}", UserWarning, stacklevel=3)
        return [self.source_vocab.encode(s, warn=False) for s in sources]

    # --- decoding ----------------------------------------------------------------------
    @property
    def greedy(self) -> GreedySearch:
        if self._greedy is None:
            self._greedy = GreedySearch(self.model, max_length=self.config.train.max_decode_length)
        return self._greedy

    def predict_ids(self, sources: Sequence[Sequence[int]], *, batch_size: int = 256) -> list[list[int]]:
        """Greedy-decode id sequences; batches of similar length, original order kept."""
        order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
        results: list[list[int]] = [[] for _ in sources]
        start = 0
        while start < len(order):
            width = bucket_width(max(1, len(sources[order[start]])))
            chunk = [i for i in order[start : start + batch_size] if len(sources[i]) <= width]
            rows = bucket_width(len(chunk)) if len(chunk) < batch_size else batch_size
            batch = pad_ids([sources[i] for i in chunk], width, rows)
            out = np.asarray(self.greedy.predict_on_batch(batch))
            for row, i in enumerate(chunk):
                results[i] = [int(t) for t in out[row]]
            start += len(chunk)
        return results

    def predict_tokens(self, sources: Sequence[Sequence[str]], *, batch_size: int = 256) -> list[list[str]]:
        """Token sequences in, best output token sequences out."""
        if not sources:
            return []
        empty = [i for i, s in enumerate(sources) if not s]
        if empty:
            raise ValueError(f"Input {empty[0] + 1} is empty; every input needs at least one symbol.")
        ids = self.predict_ids(self.encode_sources(sources), batch_size=batch_size)
        return [self.target_vocab.decode(row) for row in ids]

    def predict(self, texts: Sequence[str], *, batch_size: int = 256) -> list[str]:
        """Strings in (e.g. words), strings out (e.g. space-separated phones)."""
        tokens = self.predict_tokens([self.tokenize_source(t) for t in texts], batch_size=batch_size)
        joiner = "" if self.config.data.target_split == "char" else " "
        return [joiner.join(t) for t in tokens]

    # --- persistence ---------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write ``model.keras``, ``vocab.json`` and ``config.json``, each atomically."""
        directory = Path(directory)
        vocab = {"source": self.source_vocab.to_list(), "target": self.target_vocab.to_list()}
        atomic_write_text(directory / VOCAB_FILE, json.dumps(vocab, ensure_ascii=False, indent=1))
        atomic_write_text(directory / CONFIG_FILE, json.dumps(self.config.to_dict(), indent=2))
        atomic_save_model(self.model, directory / MODEL_FILE)

    @classmethod
    def load(cls, directory: str | Path) -> Transducer:
        """Load a directory written by :meth:`save` (or by ``biseq train``)."""
        directory = Path(directory)
        missing = [n for n in (MODEL_FILE, VOCAB_FILE, CONFIG_FILE) if not (directory / n).is_file()]
        if missing:
            raise ModelDirError(
                f"{directory} is not a biseq model directory: missing {', '.join(missing)} "
                "(a model directory is what 'biseq train --out DIR' writes)."
            )
        config = Config.from_dict(json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8")),
                                  where=str(directory / CONFIG_FILE))
        vocab = json.loads((directory / VOCAB_FILE).read_text(encoding="utf-8"))
        model = keras.saving.load_model(directory / MODEL_FILE, compile=False)
        return cls(config=config, source_vocab=Vocabulary(vocab["source"]),
                   target_vocab=Vocabulary(vocab["target"]), model=model)
