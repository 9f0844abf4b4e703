"""Ensembles: several trained models decoding together, one beam search over their mean.

At every step each model scores the next token; the ensemble's log-probability is
``log(mean_m p_m(token))`` (the models' probabilities averaged). Greedy is beam size 1.
The models must share their vocabularies' symbols (e.g. several runs, or configurations, trained
on the same data), in any order: ids are mapped to each model's own; each keeps its own
architecture, state routing and attention.

:func:`decode_entries` decodes corpus entries with one model or an ensemble alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from keras import ops

from biseq.corpus import Entry
from biseq.decoding import batched
from biseq.model import Seq2Seq
from biseq.search import SearchModel, beam_search, check_generates, default_max_length, start_decoding
from biseq.transducer import Transducer


class EnsembleError(ValueError):
    """Models that cannot decode together."""


class EnsembleSearch(SearchModel):
    """Beam search (greedy at ``beam_size=1``) over the averaged next-token distributions of several models.

    ``source_maps`` / ``target_maps``: per model, ``[V1]`` int arrays mapping the first model's ids
    to that model's (``None``: the same ids).

    Call arguments:
        source: ``[B, S]`` int source ids of the first model (0-padded).

    Returns:
        ``(sequences [B, K, L], scores [B, K], log_probs [B, K])``, best first (see
        :func:`biseq.search.beam_search`).
    """

    def __init__(self, models: Sequence[Seq2Seq], *, beam_size: int = 5, length_penalty: float = 1.0,
                 max_length: int = 0, source_maps: Sequence[np.ndarray | None] | None = None,
                 target_maps: Sequence[np.ndarray | None] | None = None, settle: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        for model in models:
            check_generates(model, 0)
        self.members = list(models)
        self.source_maps = list(source_maps or [None] * len(self.members))
        self.target_maps = list(target_maps or [None] * len(self.members))
        self.beam_size, self.length_penalty, self.max_length = beam_size, length_penalty, max_length
        self.settle = settle

    def call(self, source):
        k = self.beam_size
        batch, width = ops.shape(source)[0], ops.shape(source)[1]
        started = [start_decoding(m, source if smap is None else ops.take(ops.convert_to_tensor(smap), source),
                                  repeat=k) for m, smap in zip(self.members, self.source_maps, strict=True)]
        log_n = math.log(len(self.members))
        target_maps = [None if tmap is None else ops.convert_to_tensor(tmap) for tmap in self.target_maps]

        def step(tokens, states):
            new_states, log_probs = [], []
            for (decoder, _, bundle), state, tmap in zip(started, states, target_maps, strict=True):
                own = tokens if tmap is None else ops.take(tmap, tokens)
                logits, state = decoder.step(own, state, bundle)
                logp = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
                log_probs.append(logp if tmap is None else ops.take(logp, tmap, axis=-1))
                new_states.append(state)
            mean = ops.logsumexp(ops.stack(log_probs), axis=0) - log_n
            return mean, tuple(new_states)

        return beam_search(step, tuple(s for _, s, _ in started), batch_size=batch, beam_size=k,
                           max_length=self.max_length or default_max_length(int(width)),
                           vocab_size=started[0][0].vocab_size, length_penalty=self.length_penalty,
                           settle=self.settle)


class Ensemble:
    """Several :class:`~biseq.transducer.Transducer` decoding as one; same text interface for decoding.

    Raises:
        EnsembleError: fewer than one model, different vocabularies, or a model that cannot generate
            left to right (``seed``, ``masked``).
    """

    rescores = False

    def __init__(self, transducers: Sequence[Transducer]) -> None:
        if not transducers:
            raise EnsembleError("An ensemble needs at least one model.")
        first = transducers[0]
        self.maps: dict[str, list[np.ndarray | None]] = {"source": [None], "target": [None]}
        for i, t in enumerate(transducers[1:], start=2):
            for side in ("source", "target"):
                mine, theirs = getattr(first, f"{side}_vocab").to_list(), getattr(t, f"{side}_vocab").to_list()
                if sorted(mine) != sorted(theirs):
                    raise EnsembleError(f"Model {i} has a different {side} vocabulary from model 1; ensembled "
                                        "models must be trained on the same data (the same symbols).")
                own = {symbol: j for j, symbol in enumerate(theirs)}  # the same symbols, maybe another order
                self.maps[side].append(None if mine == theirs else np.array([own[x] for x in mine], np.int32))
        self.members = list(transducers)
        self.config, self.source_vocab, self.target_vocab = first.config, first.source_vocab, first.target_vocab
        self._searches: dict[tuple[int, float, int], EnsembleSearch] = {}

    def search(self, beam_size: int, length_penalty: float = 1.0, settle: int = 0) -> EnsembleSearch:
        """The compiled search for these settings (``settle``: see :func:`biseq.search.beam_search`)."""
        key = (beam_size, length_penalty, settle or beam_size)
        if key not in self._searches:
            self._searches[key] = EnsembleSearch([t.model for t in self.members], beam_size=beam_size,
                                                 length_penalty=length_penalty,
                                                 max_length=self.config.train.max_decode_length,
                                                 source_maps=self.maps["source"], target_maps=self.maps["target"],
                                                 settle=settle)
        return self._searches[key]

    def encode_sources(self, sources):
        return self.members[0].encode_sources(sources)

    def source_text(self, tokens) -> str:
        return self.members[0].source_text(tokens)

    def tokenize_source(self, text: str):
        return self.members[0].tokenize_source(text)

    def target_text(self, tokens) -> str:
        return self.members[0].target_text(tokens)

    def predict_nbest_ids(self, sources: Sequence[Sequence[int]], *, beam_size: int, nbest: int = 1,
                          length_penalty: float = 1.0, batch_size: int = 64) -> list[list[tuple[list[int], float]]]:
        """Per source the ``nbest`` best ``(ids, score)`` of the ensemble, best first."""
        found = self.beam_nbest_ids(sources, beam_size=beam_size, nbest=nbest, length_penalty=length_penalty,
                                    batch_size=batch_size)
        return [[(ids, score) for ids, score, _ in hyps] for hyps in found]

    def beam_nbest_ids(self, sources: Sequence[Sequence[int]], *, beam_size: int, nbest: int = 1,
                       length_penalty: float = 1.0, batch_size: int = 64
                       ) -> list[list[tuple[list[int], float, float]]]:
        """Per source the ``nbest`` best ``(ids, score, log p)`` of the ensemble's beam, best first."""
        if not 1 <= nbest <= beam_size:
            raise ValueError(f"nbest must be between 1 and the beam size {beam_size}. Received: {nbest}")
        search = self.search(beam_size, length_penalty, settle=nbest)  # only the nbest need be final
        in_order = self.members[0]._in_order

        def run(batch):
            seqs, scores, logps = (np.asarray(x) for x in search.run(batch))
            return [[(in_order([int(t) for t in seqs[r, j]], 0), float(scores[r, j]), float(logps[r, j]))
                     for j in range(nbest) if scores[r, j] > -1e8] for r in range(len(seqs))]

        return batched(sources, run, batch_size=batch_size)

    def output_log_probs(self, sources: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]]) -> np.ndarray:
        """``[N]`` teacher-forced ``log p(output | source)`` under the ensemble: at each token the mean of the
        members' probabilities (as :meth:`search` decodes), summed over tokens in log space."""
        if not sources:
            return np.zeros(0)
        per_member = [m.token_log_probs(_mapped(sources, smap), _mapped(outputs, tmap))
                      for m, smap, tmap in zip(self.members, self.maps["source"], self.maps["target"], strict=True)]
        count = np.log(len(self.members))
        return np.array([float((np.logaddexp.reduce(np.stack(tokens), axis=0) - count).sum())
                         for tokens in zip(*per_member, strict=True)])

    def predict_tokens(self, sources: Sequence[Sequence[str]], *, batch_size: int = 256) -> list[list[str]]:
        """Greedy ensemble decoding of token sequences."""
        if not sources:
            return []
        found = self.predict_nbest_ids(self.encode_sources(sources), beam_size=1, batch_size=batch_size)
        return [self.target_vocab.decode(n[0][0]) if n else [] for n in found]

    def predict(self, texts: Sequence[str], *, batch_size: int = 256, beam_size: int = 1,
                length_penalty: float = 1.0) -> list[str]:
        return [n[0][0] if n else "" for n in self.predict_nbest(texts, beam_size=beam_size,
                                                                 length_penalty=length_penalty)]

    predict_nbest = Transducer.predict_nbest  # text in, n-best text out: the same steps as one model's


def _mapped(sequences: Sequence[Sequence[int]], ids: np.ndarray | None) -> Sequence[Sequence[int]]:
    """The sequences' ids in another model's vocabulary (``ids[i]``: its id of this one's ``i``)."""
    return sequences if ids is None else [[int(ids[t]) for t in seq] for seq in sequences]


def decode_entries(transducer: Transducer | Ensemble, entries: Sequence[Entry], *, batch_size: int = 256,
                   beam_size: int = 1, length_penalty: float = 1.0) -> list[list[str]]:
    """The best output tokens for each entry's source: greedy, or beam search when ``beam_size > 1``."""
    sources = [e.source for e in entries]
    if beam_size > 1 or transducer.rescores:
        found = transducer.predict_nbest_ids(transducer.encode_sources(sources), beam_size=beam_size,
                                             length_penalty=length_penalty)
        return [transducer.target_vocab.decode(n[0][0]) if n else [] for n in found]
    return transducer.predict_tokens(sources, batch_size=batch_size)
