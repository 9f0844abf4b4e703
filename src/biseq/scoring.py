"""Teacher-forced log-probabilities of given outputs under one model: id sequences in, scores out.

:class:`ModelScoring` is the base of :class:`biseq.decoding.ModelDecoding` (and so of
:class:`biseq.transducer.Transducer`); its compiled scorers are built on first use and kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from biseq.batching import decode_rows, decode_width, length_sorted_chunks, pad_ids, reverse_targets, target_batch
from biseq.model import Seq2Seq
from biseq.search import CTCScorer, OutputScorer, TwinScorer


class ModelScoring:
    """Scores of given outputs under ``model``, a :class:`~biseq.model.Seq2Seq`.

    Sources and outputs are id sequences without ``<s>`` and ``</s>``; ``N`` is their number.
    """

    def __init__(self, *, model: Seq2Seq) -> None:
        self.model = model
        self._scorer: TwinScorer | None = None
        self._output_scorer: OutputScorer | None = None
        self._ctc_scorer: CTCScorer | None = None

    def token_log_probs(self, sources: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]], *,
                        batch_size: int = 256) -> list[np.ndarray]:
        """Teacher-forced ``log p`` of each token of each output (``</s>`` last): ``N`` arrays ``[len + 1]``.

        Left to right (a ``twin`` model's left-to-right decoder). Rows are sorted by length and
        padded to bucket widths, so a call compiles one forward pass per bucket shape; each distinct
        source is encoded once however many outputs are scored for it.
        """
        if self._output_scorer is None:
            self._output_scorer = OutputScorer(self.model)
        result: list[np.ndarray] = [np.zeros(0)] * len(sources)
        for chunk in length_sorted_chunks(sources, outputs, batch_size):
            distinct = {s: n for n, s in enumerate(dict.fromkeys(tuple(sources[i]) for i in chunk))}
            rows = decode_rows(len(chunk), batch_size)
            batch = target_batch([[]] * len(chunk), [outputs[i] for i in chunk], rows=rows, source_width=1,
                                 target_width=decode_width(max(len(outputs[i]) for i in chunk) + 1))
            source = pad_ids(list(distinct), decode_width(max(1, *(len(s) for s in distinct))),
                             decode_rows(len(distinct), batch_size))
            source_row = np.zeros(rows, np.int32)  # padding rows read source 0
            source_row[: len(chunk)] = [distinct[tuple(sources[i])] for i in chunk]
            logp = np.asarray(self._output_scorer.run(
                (source, source_row, batch.decoder_input, batch.decoder_target)), dtype=np.float64)
            for row, i in enumerate(chunk):
                result[i] = logp[row, : len(outputs[i]) + 1]
        return result

    def output_log_probs(self, sources: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]]) -> np.ndarray:
        """``[N]`` teacher-forced ``log p(output | source)``; a ``twin`` model: the mean of its two decoders'."""
        if not sources:
            return np.zeros(0)
        if self.model.objective == "twin":
            return self.twin_scores(sources, outputs).mean(axis=1)
        if self.model.objective == "ctc":
            return self.ctc_log_probs(sources, outputs)
        return np.array([t.sum() for t in self.token_log_probs(sources, outputs)])

    def ctc_log_probs(self, sources: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]], *,
                      batch_size: int = 256) -> np.ndarray:
        """``[N]`` ``log p(output | source)`` under a ``ctc`` model (every alignment summed)."""
        if self._ctc_scorer is None:
            self._ctc_scorer = CTCScorer(self.model)
        result = np.zeros(len(sources), dtype=np.float64)
        for chunk in length_sorted_chunks(sources, outputs, batch_size):
            rows = decode_rows(len(chunk), batch_size)
            source = pad_ids([sources[i] for i in chunk], decode_width(max(1, *(len(sources[i]) for i in chunk))),
                             rows)
            output = pad_ids([outputs[i] for i in chunk], decode_width(max(1, *(len(outputs[i]) for i in chunk))),
                             rows)
            result[chunk] = np.asarray(self._ctc_scorer.run((source, output)))[: len(chunk)]
        return result

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
        for chunk in length_sorted_chunks(sources, outputs, rows):
            batch = target_batch([sources[i] for i in chunk], [outputs[i] for i in chunk], rows=rows,
                                 source_width=s_width, target_width=t_width)
            rev = reverse_targets(batch)
            fwd, bwd = self._scorer.run((batch.source, batch.decoder_input, batch.decoder_target,
                                         rev.decoder_input, rev.decoder_target, batch.weight))
            result[chunk, 0] = np.asarray(fwd)[: len(chunk)]
            result[chunk, 1] = np.asarray(bwd)[: len(chunk)]
        return result
