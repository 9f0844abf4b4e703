"""A trained system: config + vocabularies + model; text in, text out; save and load.

A saved model directory holds ``model.keras`` (weights and architecture),
``vocab.json`` and ``config.json``: everything needed to load it in a new process.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from biseq.batching import decode_rows, decode_width, pad_ids, reverse_targets, target_batch
from biseq.config import Config
from biseq.corpus import split_tokens
from biseq.model import Seq2Seq
from biseq.search import BeamSearch, GreedySearch, MaskPredict, OutputScorer, TwinScorer
from biseq.vocabulary import EOS_ID, MASK, PAD_ID, UNK, Vocabulary

MODEL_FILE, VOCAB_FILE, CONFIG_FILE = "model.keras", "vocab.json", "config.json"
WEIGHTS_FILE = "weights.npz"  # compact form (save(weights_dtype="float16")): the arrays only, no code, no pickle


class ModelDirError(ValueError):
    """A model directory is missing or incomplete."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _fsync(path: str) -> None:
    """Flush ``path`` to the disk: what ``os.replace`` makes visible is complete even after a power cut."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_save_model(model: keras.Model, path: Path) -> None:
    """``model.save`` to a temporary ``.keras`` file, then ``os.replace`` onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".keras")
    os.close(fd)
    try:
        model.save(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


KERAS_MEMBERS = ("config.json", "metadata.json", "model.weights.h5")


def load_keras_file(path: Path) -> keras.Model:
    """A biseq ``.keras`` file, loaded in Keras's safe mode; nothing in it is executed.

    Refused with :class:`ModelDirError` naming the file: not a zip archive, members other than
    Keras's own three (a pickle, say), a model that is not a biseq ``Seq2Seq``, a layer Keras's
    safe mode refuses (``Lambda``), or weights that do not fit the architecture.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            config = json.loads(archive.read("config.json")) if "config.json" in names else None
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelDirError(f"{path}: not a readable .keras file ({err}); truncated or not a model") from None
    foreign = [n for n in names if n not in KERAS_MEMBERS and not n.startswith("assets/")]
    if foreign or config is None:
        what = f"unexpected member(s) {foreign}" if foreign else "no config.json inside"
        raise ModelDirError(f"{path}: refused, {what}: a biseq model file holds only {', '.join(KERAS_MEMBERS)}")
    if not isinstance(config, dict) or config.get("class_name") != "Seq2Seq":
        found = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise ModelDirError(f"{path}: refused, it holds a {found!r} model, not a biseq Seq2Seq")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - any failure to rebuild a foreign or damaged file is the file's
        raise ModelDirError(f"{path}: cannot be loaded ({type(err).__name__}: {str(err)[:300]})") from None


def vocabulary_case(vocab: Vocabulary) -> str:
    """``lower`` or ``upper`` when every cased symbol past the specials has that case, else ``mixed``."""
    cased = [s for s in vocab.symbols[4:] if s.lower() != s.upper()]
    if cased and all(s == s.lower() for s in cased):
        return "lower"
    if cased and all(s == s.upper() for s in cased):
        return "upper"
    return "mixed"


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
        self._source_case = vocabulary_case(source_vocab)
        self._beams: dict[tuple[int, float, int], BeamSearch] = {}
        self._scorer: TwinScorer | None = None
        self._output_scorer: OutputScorer | None = None
        self._mask_predict: dict[tuple[int, int], MaskPredict] = {}
        self.iterations, self.length_candidates = 4, 3  # mask-predict settings (objective "masked")

    # --- text <-> ids ----------------------------------------------------------------
    def tokenize_source(self, text: str) -> tuple[str, ...]:
        """Split one input string the way the training data's sources were split.

        When every cased source symbol of the vocabulary is lower case (or upper case), the
        input is folded to that case, so ``Hello`` works for a model trained on ``hello``.
        """
        data = self.config.data
        if data.format == "cmudict" or data.lowercase or self._source_case == "lower":
            text = text.lower()
        elif self._source_case == "upper":
            text = text.upper()
        return split_tokens(text.strip(), data.source_split)



    def source_text(self, tokens: Sequence[str]) -> str:
        """Source tokens back to a display string (characters joined, or tokens with spaces)."""
        return ("" if self.config.data.source_split == "char" else " ").join(tokens)

    def encode_sources(self, sources: Sequence[Sequence[str]]) -> list[list[int]]:
        """Token sequences -> ids; unknown symbols become ``<unk>`` with one warning listing them."""
        empty = [i for i, s in enumerate(sources) if not s]
        if empty:
            raise ValueError(f"Input {empty[0] + 1} is empty; every input needs at least one symbol.")
        missing = self.source_vocab.unknown(t for s in sources for t in s)
        if missing:
            warnings.warn(f"Unknown source symbol(s) mapped to {UNK}: {missing}", UserWarning, stacklevel=3)
        return [self.source_vocab.encode(s, warn=False) for s in sources]

    # --- decoding ----------------------------------------------------------------------
    @property
    def rescores(self) -> bool:
        """True when even the 1-best output needs the n-best search (``twin`` agreement rescoring)."""
        return self.model.objective == "twin"

    @property
    def greedy(self) -> GreedySearch:
        if self._greedy is None:
            self._greedy = GreedySearch(self.model, max_length=self.config.train.max_decode_length)
        return self._greedy

    def _batched(self, sources: Sequence[Sequence[int]], run, *, batch_size: int) -> list:
        """Apply ``run(padded [b, S]) -> per-row results`` to length-sorted batches; original order kept."""
        order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
        results: list = [None] * len(sources)
        start = 0
        while start < len(order):
            width = decode_width(max(1, len(sources[order[start]])))
            chunk = [i for i in order[start : start + batch_size] if len(sources[i]) <= width]
            rows = decode_rows(len(chunk), batch_size)
            out = run(pad_ids([sources[i] for i in chunk], width, rows))
            for row, i in enumerate(chunk):
                results[i] = out[row]
            start += len(chunk)
        return results

    def predict_ids(self, sources: Sequence[Sequence[int]], *, batch_size: int = 256) -> list[list[int]]:
        """Greedy-decode id sequences (mask-predict for a ``masked`` model)."""
        search = self.mask_predict() if self.model.objective == "masked" else self.greedy

        def run(batch):
            out = search.predict_on_batch(batch)
            out = out[0] if isinstance(out, (tuple, list)) else out
            return [[int(t) for t in row] for row in np.asarray(out)]

        return self._batched(sources, run, batch_size=batch_size)

    def mask_predict(self) -> MaskPredict:
        """Objective ``masked``: the compiled mask-predict decoder (``iterations``, ``length_candidates``)."""
        key = (self.iterations, self.length_candidates)
        if key not in self._mask_predict:
            self._mask_predict[key] = MaskPredict(
                self.model, mask_id=self.target_vocab.id(MASK), iterations=self.iterations,
                length_candidates=self.length_candidates, max_length=self.config.train.max_decode_length)
        return self._mask_predict[key]

    def beam(self, beam_size: int, length_penalty: float = 1.0, direction: int = 0) -> BeamSearch:
        key = (beam_size, length_penalty, direction)
        if key not in self._beams:
            self._beams[key] = BeamSearch(self.model, beam_size=beam_size, length_penalty=length_penalty,
                                          max_length=self.config.train.max_decode_length, direction=direction)
        return self._beams[key]

    def predict_nbest_ids(self, sources: Sequence[Sequence[int]], *, beam_size: int, nbest: int = 1,
                          length_penalty: float = 1.0, batch_size: int = 64, direction: int | None = None,
                          ) -> list[list[tuple[list[int], float]]]:
        """Beam-search id sequences: per source the ``nbest`` best ``(ids, score)``, best first.

        A ``twin`` model decodes in both directions and rescores (see :meth:`twin_nbest_ids`)
        unless ``direction`` (0 left to right, 1 right to left) is given.
        """
        if not 1 <= nbest <= beam_size:
            raise ValueError(f"nbest must be between 1 and the beam size {beam_size}. Received: {nbest}")
        if self.model.objective == "twin" and direction is None:
            return self.twin_nbest_ids(sources, beam_size=beam_size, nbest=nbest, length_penalty=length_penalty)
        found = self.beam_nbest_ids(sources, beam_size=beam_size, nbest=nbest, length_penalty=length_penalty,
                                    batch_size=batch_size, direction=direction or 0)
        return [[(ids, score) for ids, score, _ in hyps] for hyps in found]

    def beam_nbest_ids(self, sources: Sequence[Sequence[int]], *, beam_size: int, nbest: int = 1,
                       length_penalty: float = 1.0, batch_size: int = 64, direction: int = 0,
                       ) -> list[list[tuple[list[int], float, float]]]:
        """One beam search: per source the ``nbest`` best ``(ids, score, log p)``, best first.

        ``score`` is the length-normalised score the beam ranks by, ``log p`` the hypothesis's
        log-probability under the searching decoder (``direction``; no twin rescoring).
        """
        if not 1 <= nbest <= beam_size:
            raise ValueError(f"nbest must be between 1 and the beam size {beam_size}. Received: {nbest}")
        search = self.beam(beam_size, length_penalty, direction)

        def run(batch):
            seqs, scores, logps = (np.asarray(x) for x in search.predict_on_batch(batch))
            return [[(self._in_order([int(t) for t in seqs[r, j]], direction), float(scores[r, j]),
                      float(logps[r, j])) for j in range(nbest) if scores[r, j] > -1e8] for r in range(len(seqs))]

        return self._batched(sources, run, batch_size=batch_size)

    @staticmethod
    def _in_order(ids: list[int], direction: int) -> list[int]:
        """Ids up to ``</s>``, read left to right (a right-to-left hypothesis is reversed)."""
        out = []
        for t in ids:
            if t == EOS_ID:
                break
            if t != PAD_ID:
                out.append(t)
        return out[::-1] if direction == 1 else out

    def token_log_probs(self, sources: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]], *,
                        batch_size: int = 256) -> list[np.ndarray]:
        """Teacher-forced ``log p`` of each token of each output (``</s>`` last): ``N`` arrays ``[len + 1]``.

        Left to right (a ``twin`` model's left-to-right decoder). Rows are sorted by length and
        padded to bucket widths, so a call compiles one forward pass per bucket shape.
        """
        if self._output_scorer is None:
            self._output_scorer = OutputScorer(self.model)
        result: list[np.ndarray] = [np.zeros(0)] * len(sources)
        order = sorted(range(len(sources)), key=lambda i: (len(sources[i]), len(outputs[i])))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = target_batch([sources[i] for i in chunk], [outputs[i] for i in chunk],
                                 rows=decode_rows(len(chunk), batch_size),
                                 source_width=decode_width(max(1, *(len(sources[i]) for i in chunk))),
                                 target_width=decode_width(max(len(outputs[i]) for i in chunk) + 1))
            logp = np.asarray(self._output_scorer.predict_on_batch(
                (batch.source, batch.decoder_input, batch.decoder_target)), dtype=np.float64)
            for row, i in enumerate(chunk):
                result[i] = logp[row, : len(outputs[i]) + 1]
        return result

    def output_log_probs(self, sources: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]]) -> np.ndarray:
        """``[N]`` teacher-forced ``log p(output | source)``; a ``twin`` model: the mean of its two decoders'."""
        if not sources:
            return np.zeros(0)
        if self.model.objective == "twin":
            return self.twin_scores(sources, outputs).mean(axis=1)
        return np.array([t.sum() for t in self.token_log_probs(sources, outputs)])

    def twin_scores(self, sources: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]], *,
                    batch_size: int = 256) -> np.ndarray:
        """``[N, 2]`` teacher-forced log-probabilities of ``outputs`` (left to right) under both decoders."""
        if self._scorer is None:
            self._scorer = TwinScorer(self.model)
        result = np.zeros((len(sources), 2), dtype=np.float64)
        if not sources:
            return result
        # one padded shape for the whole call: one compilation, little waste for short sequences
        s_width = decode_width(max(len(s) for s in sources))
        t_width = decode_width(max(len(o) for o in outputs) + 1)
        rows = decode_rows(len(sources), batch_size)
        order = sorted(range(len(sources)), key=lambda i: (len(sources[i]), len(outputs[i])))
        for start in range(0, len(order), rows):
            chunk = order[start : start + rows]
            batch = target_batch([sources[i] for i in chunk], [outputs[i] for i in chunk], rows=rows,
                                 source_width=s_width, target_width=t_width)
            rev = reverse_targets(batch)
            fwd, bwd = self._scorer.predict_on_batch((batch.source, batch.decoder_input, batch.decoder_target,
                                                      rev.decoder_input, rev.decoder_target, batch.weight))
            result[chunk, 0] = np.asarray(fwd)[: len(chunk)]
            result[chunk, 1] = np.asarray(bwd)[: len(chunk)]
        return result

    def twin_nbest_ids(self, sources: Sequence[Sequence[int]], *, beam_size: int, nbest: int = 1,
                       length_penalty: float = 1.0) -> list[list[tuple[list[int], float]]]:
        """Agreement rescoring for a ``twin`` model.

        1. beam search left to right and right to left (``beam_size`` each);
        2. every distinct hypothesis of both n-best lists is scored by both decoders (teacher forcing);
        3. combined score = ``(log p_l2r + log p_r2l) / 2 / (length + 1) ** length_penalty``; best first.
        """
        lists = [self.predict_nbest_ids(sources, beam_size=beam_size, nbest=beam_size,
                                        length_penalty=length_penalty, direction=d) for d in (0, 1)]
        candidates = [list(dict.fromkeys(tuple(ids) for ids, _ in lists[0][i] + lists[1][i]))
                      for i in range(len(sources))]
        flat = [(i, list(c)) for i, cands in enumerate(candidates) for c in cands if c]
        scores = self.twin_scores([sources[i] for i, _ in flat], [c for _, c in flat])
        ranked: list[list[tuple[list[int], float]]] = [[] for _ in sources]
        for (i, c), (fwd, bwd) in zip(flat, scores, strict=True):
            ranked[i].append((c, float((fwd + bwd) / 2 / (len(c) + 1) ** length_penalty)))
        return [sorted(r, key=lambda x: -x[1])[:nbest] for r in ranked]

    def predict_tokens(self, sources: Sequence[Sequence[str]], *, batch_size: int = 256) -> list[list[str]]:
        """Token sequences in, best output token sequences out."""
        if not sources:
            return []
        ids = self.predict_ids(self.encode_sources(sources), batch_size=batch_size)
        return [self.target_vocab.decode(row) for row in ids]

    def target_text(self, tokens: Sequence[str]) -> str:
        """Output tokens to a string (characters joined, or tokens with spaces)."""
        return ("" if self.config.data.target_split == "char" else " ").join(tokens)

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

        ``weights_dtype="float16"`` writes ``weights.npz`` (every weight array in half precision,
        compressed; half the size, for a model shipped in a package) instead of ``model.keras``:
        :meth:`load` rebuilds the network from ``config.json`` and reads the arrays back as float32.
        """
        directory = Path(directory)
        vocab = {"source": self.source_vocab.to_list(), "target": self.target_vocab.to_list()}
        atomic_write_text(directory / VOCAB_FILE, json.dumps(vocab, ensure_ascii=False, indent=1))
        atomic_write_text(directory / CONFIG_FILE, json.dumps(self.config.to_dict(), indent=2))
        if not weights_dtype:
            atomic_save_model(self.model, directory / MODEL_FILE)
            return
        arrays = {f"w{i:03d}": np.asarray(w.numpy(), dtype=weights_dtype) for i, w in enumerate(self.model.weights)}
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".weights.", suffix=".npz")
        os.close(fd)
        try:
            np.savez_compressed(tmp, **arrays)
            os.replace(tmp, directory / WEIGHTS_FILE)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, directory: str | Path) -> Transducer:
        """Load a directory written by :meth:`save` (or by ``biseq train``).

        Raises:
            ModelDirError: naming the missing, unreadable or mismatched file.
        """
        directory = Path(directory)
        weights = MODEL_FILE if (directory / MODEL_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file() \
            else WEIGHTS_FILE
        missing = [n for n in (weights, VOCAB_FILE, CONFIG_FILE) if not (directory / n).is_file()]
        if missing:
            raise ModelDirError(
                f"{directory} is not a biseq model directory: missing {', '.join(missing)} "
                "(a model directory is what 'biseq train --out DIR' writes)."
            )
        try:
            config = Config.from_dict(json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8")),
                                      where=str(directory / CONFIG_FILE))
            vocab = json.loads((directory / VOCAB_FILE).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelDirError(f"{directory}: config.json or vocab.json is not valid JSON ({err})") from None
        if not (isinstance(vocab, dict) and all(isinstance(vocab.get(k), list) and all(isinstance(t, str)
                                                for t in vocab[k]) for k in ("source", "target"))):
            raise ModelDirError(f"{directory / VOCAB_FILE}: expected {{\"source\": [symbols], \"target\": [symbols]}}")
        if weights == WEIGHTS_FILE:
            transducer = cls(config=config, source_vocab=Vocabulary(vocab["source"]),
                             target_vocab=Vocabulary(vocab["target"]))
            transducer._read_weights(directory / WEIGHTS_FILE)
            return transducer
        model = load_keras_file(directory / MODEL_FILE)
        transducer = cls(config=config, source_vocab=Vocabulary(vocab["source"]),
                         target_vocab=Vocabulary(vocab["target"]), model=model)
        transducer._check_sizes(directory)
        return transducer

    def _check_sizes(self, directory: Path) -> None:
        """The network's vocabulary sizes are those of ``vocab.json``."""
        sizes = (self.model.source_vocab_size, self.model.target_vocab_size)
        if sizes != (len(self.source_vocab), len(self.target_vocab)):
            raise ModelDirError(f"{directory / VOCAB_FILE}: {len(self.source_vocab)} source / {len(self.target_vocab)} "
                                f"target symbols, but {directory / MODEL_FILE} was trained with {sizes[0]} / "
                                f"{sizes[1]}: the files come from different runs")

    def _read_weights(self, path: Path) -> None:
        """Set the model's weights from a :data:`WEIGHTS_FILE` (``np.load`` without pickle)."""
        try:
            with np.load(path, allow_pickle=False) as arrays:
                values = [arrays[f"w{i:03d}"] for i in range(len(arrays.files))]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise ModelDirError(f"{path}: not a readable weights file ({err})") from None
        weights = self.model.weights
        if len(values) != len(weights):
            raise ModelDirError(f"{path}: {len(values)} weight arrays, but config.json's model has {len(weights)}")
        for i, (w, v) in enumerate(zip(weights, values, strict=True)):
            if tuple(w.shape) != v.shape:
                raise ModelDirError(f"{path}: array {i} ({w.path}) has shape {v.shape}, the model expects "
                                    f"{tuple(w.shape)}")
            w.assign(v.astype(w.dtype))
