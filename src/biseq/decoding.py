"""Decoding one model: id sequences in, best id sequences (and n-best lists with scores) out.

:class:`ModelDecoding` holds the compiled searches of :mod:`biseq.search` (greedy, mask-predict,
beam, built on first use and kept per setting), runs them over length-sorted padded batches,
and rescores a ``twin`` model's two n-best lists with both decoders. It is the base of
:class:`biseq.transducer.Transducer`, which adds text in and out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from biseq.batching import decode_rows, pad_ids, width_chunks
from biseq.config import Config
from biseq.model import Seq2Seq
from biseq.parallel import decoding_devices, spread_rows
from biseq.scoring import ModelScoring
from biseq.search import BeamSearch, CTCSearch, GreedySearch, MaskPredict, SearchModel
from biseq.vocabulary import EOS_ID, MASK, PAD_ID, Vocabulary


def batched(sources: Sequence[Sequence[int]], run, *, batch_size: int) -> list:
    """Apply ``run(padded [b, S]) -> per-row results`` to length-sorted batches; original order kept."""
    devices = decoding_devices()
    results: list = [None] * len(sources)
    for chunk, width in width_chunks(sources, batch_size):
        rows = decode_rows(len(chunk), batch_size)
        rows += -rows % devices  # a multiple of the devices the rows are split over
        out = run(spread_rows(pad_ids([sources[i] for i in chunk], width, rows)))
        for row, i in enumerate(chunk):
            results[i] = out[row]
    return results


class ModelDecoding(ModelScoring):
    """Greedy, mask-predict and beam decoding of ``model`` (a :class:`~biseq.model.Seq2Seq`).

    Args:
        model: the network.
        config: the run's :class:`~biseq.config.Config` (``train.max_decode_length``).
        target_vocab: the target vocabulary (``<mask>`` for mask-predict).
    """

    def __init__(self, *, model: Seq2Seq, config: Config, target_vocab: Vocabulary) -> None:
        super().__init__(model=model)
        self.config, self.target_vocab = config, target_vocab
        self._searches: dict[tuple, SearchModel] = {}  # compiled searches by kind and settings
        self.iterations, self.length_candidates = 4, 3  # mask-predict settings (objective "masked")

    @property
    def rescores(self) -> bool:
        """True when even the 1-best output needs the n-best search (``twin`` agreement rescoring)."""
        return self.model.objective == "twin"

    def _search(self, key: tuple, build: Callable[[], SearchModel]) -> SearchModel:
        """The compiled search for ``key`` (built by ``build`` on first use, then kept)."""
        if key not in self._searches:
            self._searches[key] = build()
        return self._searches[key]

    @property
    def greedy(self) -> GreedySearch:
        """The compiled greedy search."""
        return self._search(("greedy",), lambda: GreedySearch(self.model, max_length=self.max_length))

    @property
    def max_length(self) -> int:
        return self.config.train.max_decode_length

    def predict_ids(self, sources: Sequence[Sequence[int]], *, batch_size: int = 256) -> list[list[int]]:
        """Greedy-decode id sequences (mask-predict for a ``masked`` model, best alignment for ``ctc``)."""
        search = {"masked": self.mask_predict, "ctc": self.ctc}.get(self.model.objective, lambda: self.greedy)()

        def run(batch):
            out = search.run(batch)
            out = np.asarray(out[0] if isinstance(out, (tuple, list)) else out)
            out = out[:, 0] if out.ndim == 3 else out  # CTC: the first of its n-best
            return [[int(t) for t in row] for row in out]

        return batched(sources, run, batch_size=batch_size)

    def mask_predict(self) -> MaskPredict:
        """Objective ``masked``: the compiled mask-predict decoder (``iterations``, ``length_candidates``)."""
        return self._search(("masked", self.iterations, self.length_candidates), lambda: MaskPredict(
            self.model, mask_id=self.target_vocab.id(MASK), iterations=self.iterations,
            length_candidates=self.length_candidates, max_length=self.max_length))

    def ctc(self, beam_size: int = 1, nbest: int = 1) -> CTCSearch:
        """Objective ``ctc``: the compiled CTC search (greedy for ``beam_size`` 1)."""
        return self._search(("ctc", beam_size, nbest), lambda: CTCSearch(
            self.model, beam_size=beam_size, nbest=nbest, max_length=self.max_length))

    def beam(self, beam_size: int, length_penalty: float = 1.0, direction: int = 0, settle: int = 0) -> BeamSearch:
        """The compiled beam search for these settings (``settle``: see :func:`biseq.search.beam_search`)."""
        return self._search(("beam", beam_size, length_penalty, direction, settle or beam_size), lambda: BeamSearch(
            self.model, beam_size=beam_size, length_penalty=length_penalty, max_length=self.max_length,
            direction=direction, settle=settle))

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
        if self.model.objective == "ctc":
            return self.ctc_nbest_ids(sources, beam_size=beam_size, nbest=nbest, batch_size=batch_size)
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
        search = self.beam(beam_size, length_penalty, direction, settle=nbest)  # only the nbest need be final

        def run(batch):
            seqs, scores, logps = (np.asarray(x) for x in search.run(batch))
            return [[(self._in_order([int(t) for t in seqs[r, j]], direction), float(scores[r, j]),
                      float(logps[r, j])) for j in range(nbest) if scores[r, j] > -1e8] for r in range(len(seqs))]

        return batched(sources, run, batch_size=batch_size)

    def ctc_nbest_ids(self, sources: Sequence[Sequence[int]], *, beam_size: int, nbest: int = 1,
                      batch_size: int = 64) -> list[list[tuple[list[int], float]]]:
        """Objective ``ctc``: CTC prefix beam search; per source the ``nbest`` best ``(ids, log p)``."""
        search = self.ctc(beam_size, nbest)

        def run(batch):
            tokens, scores = (np.asarray(x) for x in search.run(batch))
            return [[([int(t) for t in tokens[r, j] if t != PAD_ID], float(scores[r, j])) for j in range(nbest)
                     if scores[r, j] > -1e8] for r in range(len(tokens))]

        return batched(sources, run, batch_size=batch_size)

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
