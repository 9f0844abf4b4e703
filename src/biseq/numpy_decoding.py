"""Greedy search, beam search and teacher-forced scoring over :class:`~biseq.numpy_model.NumpySeq2Seq`.

The same searches as :mod:`biseq.search` (same stopping rules, length normalisation and
tie-breaking), run step by step in NumPy; a greedy batch drops each row once it has ended, a beam
batch each source once its best hypotheses are settled.
:class:`NumpyTransducer` gives them the interface of :class:`biseq.transducer.Transducer` that
:class:`biseq.g2p.G2P` and :func:`biseq.joint_sequence.joint_nbest` use, read from a compact model
directory without importing Keras or JAX.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from biseq.batching import default_max_length, length_sorted_chunks, width_chunks
from biseq.config import Config
from biseq.model_files import (
    CONFIG_FILE,
    MODEL_FILE,
    VOCAB_FILE,
    WEIGHTS_FILE,
    ModelDirError,
    read_config,
    read_vocabularies,
    weights_file,
)
from biseq.numpy_model import Encoded, NumpySeq2Seq, UnsupportedModel, log_softmax, unsupported_reason
from biseq.text_codec import TextCodec, vocabulary_case
from biseq.vocabulary import BOS_ID, EOS_ID, PAD_ID, Vocabulary

NEG = -1e9  # as biseq.search: the log-probability of an impossible hypothesis


def _never(vocab_size: int) -> np.ndarray:
    """``[V]``: ``NEG`` at ``<pad>`` and ``<s>`` (never generated), 0 elsewhere."""
    bias = np.zeros(vocab_size, np.float32)
    bias[[PAD_ID, BOS_ID]] = NEG
    return bias


class EncoderCache:
    """The encoder's outputs per source, kept from a search to the scoring that follows it (a joint
    combination scores the candidates of the sources the beam has just read); every search starts
    it afresh, so nothing is kept from one call to the next; at most ``size`` sources."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.entries: dict[tuple[int, ...], tuple[np.ndarray, list[list[np.ndarray]]]] = {}

    def encode(self, model: NumpySeq2Seq, sources: Sequence[Sequence[int]]) -> Encoded:
        """:meth:`NumpySeq2Seq.encode` of ``sources`` padded with 0 to the longest, from the cache when
        every one of them is there."""
        keys = [tuple(s) for s in sources]
        found = [self.entries.get(k) for k in keys]  # .get: another thread's search may clear it meanwhile
        if any(f is None for f in found):
            encoded = model.encode(_source_batch(sources))
            for b, key in enumerate(keys):
                self.entries.pop(key, None)
                self.entries[key] = (encoded.memory[b, : len(key)],
                                     [[part[b] for part in layer] for layer in encoded.states])
            while len(self.entries) > self.size:
                try:
                    self.entries.pop(next(iter(self.entries)))
                except (StopIteration, KeyError, RuntimeError):  # emptied or changed by another thread
                    break
            return encoded
        length = max(len(k) for k in keys)
        memory = np.zeros((len(keys), length, found[0][0].shape[-1]), np.float32)
        mask = np.zeros((len(keys), length), bool)
        for b, (rows, _) in enumerate(found):
            memory[b, : len(rows)], mask[b, : len(rows)] = rows, True
        states = [[np.stack([f[1][layer][part] for f in found]) for part in range(len(found[0][1][layer]))]
                  for layer in range(len(found[0][1]))]
        return Encoded(memory=memory, mask=mask, states=states)


def _source_batch(sources: Sequence[Sequence[int]]) -> np.ndarray:
    """``[B, S]`` ids padded with 0 to the longest."""
    batch = np.zeros((len(sources), max(len(s) for s in sources)), np.int64)
    for i, s in enumerate(sources):
        batch[i, : len(s)] = s
    return batch


def _encode(model: NumpySeq2Seq, sources: Sequence[Sequence[int]], cache: EncoderCache | None) -> Encoded:
    return cache.encode(model, sources) if cache is not None else model.encode(_source_batch(sources))


def greedy_ids(model: NumpySeq2Seq, sources: Sequence[Sequence[int]], *, steps: int,
               cache: EncoderCache | None = None) -> list[list[int]]:
    """Per source the greedy output ids (without ``</s>``), at most ``steps`` of them."""
    state, memory = model.initial_state(_encode(model, sources, cache))
    rows = np.arange(len(sources))  # the sources still decoding
    tokens = np.full(len(sources), BOS_ID)
    out: list[list[int]] = [[] for _ in sources]
    never = _never(model.vocab_size)
    for _ in range(steps):
        logits, state = model.step(tokens, state, memory)
        tokens = np.argmax(logits + never, axis=-1)
        ended = tokens == EOS_ID
        for row, token in zip(rows[~ended].tolist(), tokens[~ended].tolist(), strict=True):
            out[row].append(token)
        if ended.any():
            keep = np.flatnonzero(~ended)
            if not len(keep):
                break
            rows, tokens, state = rows[keep], tokens[keep], state.take(keep)
            memory = memory.take(keep) if memory is not None else None
    return out


def beam_ids(model: NumpySeq2Seq, sources: Sequence[Sequence[int]], *, beam_size: int, length: int,
             length_penalty: float = 1.0, cache: EncoderCache | None = None, settle: int = 0
             ) -> list[list[tuple[list[int], float, float]]]:
    """Beam search as :func:`biseq.search.beam_search` over at most ``length`` steps: per source the
    ``beam_size`` best ``(ids, score, log p)``, best first.

    The same results, less work: a source leaves the batch once its ``K`` finished hypotheses can no
    longer be beaten (the rule that stops :func:`~biseq.search.beam_search` once it holds for every
    source; an alive hypothesis's log p only falls, so nothing it would still find could enter its
    ``K`` best), and the attention memory, the same for a source's ``K`` beams, is never reordered.
    With ``settle`` ``n`` (``1 <= n <= K``; 0: ``K``) a source leaves once its ``n`` best are
    settled: those ``n`` are still exactly the full search's, the rest of its list may differ.
    """
    b, k, v = len(sources), beam_size, model.vocab_size
    state, memory = model.initial_state(_encode(model, sources, cache), np.repeat(np.arange(b), k))
    alive_seq = np.zeros((b, k, length), np.int64)
    alive_logp = np.concatenate([np.zeros((b, 1)), np.full((b, k - 1), NEG)], axis=1).astype(np.float32)
    fin_seq = np.zeros((b, k, length), np.int64)
    fin_score, fin_logp = np.full((b, k), NEG, np.float32), np.full((b, k), NEG, np.float32)
    done = _Pools(b, k, length)  # each source's pools as they were when it left the batch
    active = np.arange(b)  # the sources still in the batch, in batch order
    tokens = np.full(b * k, BOS_ID)
    never = _never(v)
    best_denominator = max(float(length) ** length_penalty, 1.0)
    settle = settle or k
    if not 1 <= settle <= k:
        raise ValueError(f"settle must be between 1 and the beam size {k}. Received: {settle}")
    for t in range(length):
        settled = fin_score[:, settle - 1] >= alive_logp.max(axis=1) / best_denominator
        if settled.any():
            done.put(active[settled], fin_seq[settled], fin_score[settled], fin_logp[settled], alive_seq[settled],
                     alive_logp[settled])
            stay = np.flatnonzero(~settled)
            if not len(stay):
                break
            active, alive_seq, alive_logp = active[stay], alive_seq[stay], alive_logp[stay]
            fin_seq, fin_score, fin_logp = fin_seq[stay], fin_score[stay], fin_logp[stay]
            beams = (stay[:, None] * k + np.arange(k)).reshape(-1)
            tokens, state = tokens[beams], state.take(beams)
            memory = memory.take(beams) if memory is not None else None
        n = len(active)
        rows = np.arange(n)[:, None]  # with an [n, m] index array: the m chosen entries of each source
        logits, state = model.step(tokens, state, memory)
        cand = (alive_logp[:, :, None] + (log_softmax(logits) + never).reshape(n, k, v)).reshape(n, k * v)
        top_index = np.argsort(-cand, axis=1, kind="stable")[:, : 2 * k]
        top_logp = cand[rows, top_index]
        top_beam, top_token = top_index // v, top_index % v
        top_seq = alive_seq[rows, top_beam]
        top_seq[:, :, t] = top_token
        ended = top_token == EOS_ID
        finalize = ended & (np.arange(2 * k)[None, :] < k)
        pool_score = np.concatenate([fin_score, np.where(finalize, top_logp / (t + 1.0) ** length_penalty, NEG)], 1)
        pool_logp = np.concatenate([fin_logp, np.where(finalize, top_logp, NEG)], axis=1)
        keep = np.argsort(-pool_score, axis=1, kind="stable")[:, :k]
        fin_score, fin_logp = pool_score[rows, keep], pool_logp[rows, keep]
        fin_seq = np.concatenate([fin_seq, top_seq], axis=1)[rows, keep]
        survivors = np.where(ended, NEG, top_logp)
        keep = np.argsort(-survivors, axis=1, kind="stable")[:, :k]
        alive_logp, alive_seq = survivors[rows, keep], top_seq[rows, keep]
        tokens = top_token[rows, keep].reshape(n * k)
        state = state.take((top_beam[rows, keep] + rows * k).reshape(n * k))  # memory: the same for every beam
    else:
        done.put(active, fin_seq, fin_score, fin_logp, alive_seq, alive_logp)
    return done.best(length, length_penalty)


class _Pools:
    """Per source the finished and alive hypotheses a beam search ended with: ``[B, K, L]`` ids, ``[B, K]``
    scores and log p."""

    def __init__(self, b: int, k: int, length: int) -> None:
        self.fin_seq, self.alive_seq = np.zeros((b, k, length), np.int64), np.zeros((b, k, length), np.int64)
        self.fin_score, self.fin_logp, self.alive_logp = (np.full((b, k), NEG, np.float32) for _ in range(3))

    def put(self, sources: np.ndarray, fin_seq, fin_score, fin_logp, alive_seq, alive_logp) -> None:
        self.fin_seq[sources], self.fin_score[sources], self.fin_logp[sources] = fin_seq, fin_score, fin_logp
        self.alive_seq[sources], self.alive_logp[sources] = alive_seq, alive_logp

    def best(self, length: int, length_penalty: float) -> list[list[tuple[list[int], float, float]]]:
        """Per source its ``K`` best ``(ids, score, log p)``: unfinished hypotheses compete too, scored at
        full length."""
        alive_score = np.where(self.alive_logp > NEG / 2, self.alive_logp / float(length) ** length_penalty, NEG)
        pool_score = np.concatenate([self.fin_score, alive_score], axis=1)
        b, k = self.fin_score.shape
        keep = np.argsort(-pool_score, axis=1, kind="stable")[:, :k]
        seqs = np.take_along_axis(np.concatenate([self.fin_seq, self.alive_seq], axis=1), keep[:, :, None], axis=1)
        scores = np.take_along_axis(pool_score, keep, axis=1)
        logps = np.take_along_axis(np.concatenate([self.fin_logp, self.alive_logp], axis=1), keep, axis=1)
        return [[(_until_end(seqs[r, j]), float(scores[r, j]), float(logps[r, j])) for j in range(k)
                 if scores[r, j] > -1e8] for r in range(b)]


def _until_end(ids: np.ndarray) -> list[int]:
    out = []
    for t in ids.tolist():
        if t == EOS_ID:
            break
        if t != PAD_ID:
            out.append(t)
    return out


def output_log_probs(model: NumpySeq2Seq, sources: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]],
                     cache: EncoderCache | None = None) -> np.ndarray:
    """``[N]`` teacher-forced ``log p(output | source)`` (``</s>`` included).

    Outputs are read as a trie per source: each distinct source is encoded once, and each distinct
    prefix is run through the decoder once however many outputs share it (the candidates of one
    word mostly differ in a phone or two), so a step decodes one row per distinct prefix.
    """
    if not sources:
        return np.zeros(0)
    distinct = {s: n for n, s in enumerate(dict.fromkeys(tuple(s) for s in sources))}
    keys = [(distinct[tuple(s)], tuple(o)) for s, o in zip(sources, outputs, strict=True)]
    state, memory = model.initial_state(_encode(model, list(distinct), cache))
    # nodes at depth t: (source, prefix of length t) -> row of the state; depth 0: one per source
    rows = {(n, ()): n for n in range(len(distinct))}
    total = np.zeros(len(outputs), np.float64)
    for depth in range(max(len(o) for o in outputs) + 1):
        prefixes = list(rows)
        tokens = np.array([prefix[-1] if prefix else BOS_ID for _, prefix in prefixes])
        logits, state = model.step(tokens, state, memory)
        logp = log_softmax(logits)
        children: dict[tuple[int, tuple[int, ...]], int] = {}
        parents = []
        for i, (n, output) in enumerate(keys):
            if len(output) < depth:
                continue
            row = rows[n, output[:depth]]
            total[i] += logp[row, output[depth] if depth < len(output) else EOS_ID]
            if depth < len(output) and (n, output[: depth + 1]) not in children:
                children[n, output[: depth + 1]] = len(parents)
                parents.append(row)
        if not parents:
            break
        order = np.array(parents)
        rows, state = children, state.take(order)
        memory = memory.take(order) if memory is not None else None
    return total


class NumpyTransducer(TextCodec):
    """A compact model directory decoded in NumPy: what :class:`biseq.g2p.G2P` asks of a Transducer.

    Args:
        config, source_vocab, target_vocab: as :class:`biseq.transducer.Transducer`'s.
        model: the network's forward pass.
    """

    rescores = False

    def __init__(self, *, config: Config, source_vocab: Vocabulary, target_vocab: Vocabulary,
                 model: NumpySeq2Seq) -> None:
        self.config, self.source_vocab, self.target_vocab, self.model = config, source_vocab, target_vocab, model
        self._source_case = vocabulary_case(source_vocab)
        self.encoder_cache = EncoderCache()

    @classmethod
    def load(cls, directory: str | Path) -> NumpyTransducer:
        """Read ``config.json``, ``vocab.json`` and the weights (:func:`weights_file`).

        Raises:
            UnsupportedModel: a ``model.keras`` directory not yet cached, or a model this path does not run.
            ModelDirError: a missing or damaged file, named.
        """
        directory = Path(directory)
        missing = [n for n in (CONFIG_FILE, VOCAB_FILE) if not (directory / n).is_file()]
        if missing:
            raise ModelDirError(f"{directory} is not a biseq model directory: missing {', '.join(missing)}")
        path = weights_file(directory)
        if path is None:
            raise UnsupportedModel(f"{directory}: no {WEIGHTS_FILE}, and its {MODEL_FILE} has no cached copy yet "
                                   "(written when the compiled path first loads it)")
        config = read_config(directory)
        reason = unsupported_reason(config.model)
        if reason:
            raise UnsupportedModel(f"{directory}: {reason}")
        source_vocab, target_vocab = read_vocabularies(directory / VOCAB_FILE)
        try:
            with open(path, "rb") as file, np.load(file, allow_pickle=False) as found:
                arrays = [found[f"w{i:03d}"] for i in range(len(found.files))]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise ModelDirError(f"{path}: not a readable weights file ({err})") from None
        try:
            model = NumpySeq2Seq(config=config.model, arrays=arrays)
        except UnsupportedModel:
            raise
        except ValueError as err:
            raise ModelDirError(f"{path}: {err}") from None
        if (len(model.source_embedding), model.vocab_size) != (len(source_vocab), len(target_vocab)):
            raise ModelDirError(f"{directory / VOCAB_FILE}: {len(source_vocab)} / {len(target_vocab)} symbols, but "
                                f"{path} has {len(model.source_embedding)} / {model.vocab_size}")
        return cls(config=config, source_vocab=source_vocab, target_vocab=target_vocab, model=model)

    def predict_ids(self, sources: Sequence[Sequence[int]], *, batch_size: int = 256) -> list[list[int]]:
        """Greedy output ids per source (length-sorted batches of ``batch_size``)."""
        self.encoder_cache.entries.clear()
        return self._in_batches(sources, batch_size, lambda part, steps: greedy_ids(
            self.model, part, steps=steps, cache=self.encoder_cache))

    def beam_nbest_ids(self, sources: Sequence[Sequence[int]], *, beam_size: int, nbest: int = 1,
                       length_penalty: float = 1.0, batch_size: int = 64) -> list[list[tuple[list[int], float, float]]]:
        """Per source the ``nbest`` best ``(ids, score, log p)`` of one beam search, best first."""
        if not 1 <= nbest <= beam_size:
            raise ValueError(f"nbest must be between 1 and the beam size {beam_size}. Received: {nbest}")
        self.encoder_cache.entries.clear()
        return self._in_batches(sources, batch_size, lambda part, steps: [
            hyps[:nbest] for hyps in beam_ids(self.model, part, beam_size=beam_size, length=steps,
                                              length_penalty=length_penalty, cache=self.encoder_cache,
                                              settle=nbest)])

    def predict_nbest_ids(self, sources: Sequence[Sequence[int]], *, beam_size: int, nbest: int = 1,
                          length_penalty: float = 1.0) -> list[list[tuple[list[int], float]]]:
        """Per source the ``nbest`` best ``(ids, score)``."""
        found = self.beam_nbest_ids(sources, beam_size=beam_size, nbest=nbest, length_penalty=length_penalty)
        return [[(ids, score) for ids, score, _ in hyps] for hyps in found]

    def output_log_probs(self, sources: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]]) -> np.ndarray:
        """``[N]`` teacher-forced ``log p(output | source)``."""
        result = np.zeros(len(sources))
        for part in length_sorted_chunks(sources, outputs, 256):
            result[part] = output_log_probs(self.model, [sources[i] for i in part], [outputs[i] for i in part],
                                            cache=self.encoder_cache)
        return result

    def _in_batches(self, sources: Sequence[Sequence[int]], batch_size: int, run) -> list:
        """``run(sources, steps)`` over the compiled path's batches (:func:`~biseq.batching.width_chunks`),
        with its step limit; results in input order."""
        out: list = [None] * len(sources)
        for chunk, width in width_chunks(sources, batch_size):
            steps = self.config.train.max_decode_length or default_max_length(width)
            for i, found in zip(chunk, run([sources[i] for i in chunk], steps), strict=True):
                out[i] = found
        return out
