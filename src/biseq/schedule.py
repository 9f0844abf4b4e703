"""Learning-rate schedules over a time budget: the cosine curve and the clock that measures progress.

A time-budgeted cosine schedule anneals by the share of the budget spent. XLA compiles the training
step once per batch shape (and the decoder once per dev shape), almost all of it in the first epoch:
about a minute on a 2-core CPU whose epochs take one to four minutes, but over three minutes on an
H100 whose epochs take six seconds. Counting that time as training annealed a 6-minute GPU run to
the floor after its first epoch. ``TrainingClock`` leaves compilation out of the progress.
"""

from __future__ import annotations

import math

import numpy as np


def cosine_rate(progress: float, *, base: float, final_fraction: float) -> float:
    """The learning rate at ``progress`` (0 to 1, clipped) of a cosine from ``base`` to ``final_fraction * base``."""
    progress = min(max(progress, 0.0), 1.0)
    return base * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


class TrainingClock:
    """Progress of a run through its time budget, with one-off compilation time left out.

    Fed the wall-clock time at each epoch start and batch end, and the seconds of each dev evaluation.
    A gap between batches longer than ``outlier`` times the median gap counts, beyond the median, as
    compilation; so does dev-evaluation time beyond the fastest evaluation (until a second evaluation
    exists, all of the first). Compilation is taken out of both the time spent and the budget.

    ``prior_elapsed`` and ``prior_overhead``: seconds spent, and compilation among them, in the earlier
    sessions of a resumed run.
    """

    def __init__(self, *, budget: float, started: float, prior_elapsed: float = 0.0, prior_overhead: float = 0.0,
                 outlier: float = 3.0) -> None:
        self.budget, self.started, self.outlier = budget, started, outlier
        self.prior_elapsed, self.prior_overhead = prior_elapsed, prior_overhead
        self.gaps: list[float] = []
        self.evaluations: list[float] = []
        self.batches_per_epoch = 0
        self._last = started
        self._batches = 0

    def start_epoch(self, now: float) -> None:
        """An epoch begins at ``now``."""
        self._last, self._batches = now, 0

    def batch_done(self, now: float) -> None:
        """A batch ended at ``now``."""
        self.gaps.append(now - self._last)
        self._last = now
        self._batches += 1
        self.batches_per_epoch = max(self.batches_per_epoch, self._batches)

    def evaluation(self, seconds: float) -> None:
        """A dev evaluation took ``seconds``."""
        self.evaluations.append(seconds)

    def elapsed(self, now: float) -> float:
        """Seconds the run has taken at ``now``, over all its sessions, compilation included."""
        return self.prior_elapsed + now - self.started

    def overhead(self) -> float:
        """Seconds of compilation in the run so far, over all its sessions."""
        seconds = self.prior_overhead
        if self.gaps:
            gaps = np.asarray(self.gaps)
            median = float(np.median(gaps))
            seconds += float(np.sum(gaps[gaps > self.outlier * median] - median))
        if len(self.evaluations) == 1:
            seconds += self.evaluations[0]
        elif self.evaluations:
            seconds += sum(self.evaluations) - len(self.evaluations) * min(self.evaluations)
        return seconds

    def epoch_seconds(self) -> float:
        """The expected wall time of a compiled epoch (batches and dev evaluation); 0 before the first."""
        if not self.gaps:
            return 0.0
        evaluation = min(self.evaluations) if len(self.evaluations) > 1 else 0.0
        return self.batches_per_epoch * float(np.median(self.gaps)) + evaluation

    def progress(self, now: float, *, ahead: float = 0.0) -> float:
        """The share of the budget spent at ``now`` (plus ``ahead`` seconds), compilation left out of both."""
        overhead = self.overhead()
        spent = self.elapsed(now) - overhead + ahead
        return spent / max(self.budget - overhead, 1e-9)
