"""The time-budgeted cosine schedule: progress leaves one-off compilation out."""

import itertools

import pytest

from biseq.schedule import TrainingClock, cosine_rate


def simulate(*, budget, compile_batches, compile_seconds, batches, step, evaluation, first_evaluation,
             prior_elapsed=0.0, prior_overhead=0.0):
    """Run a fake clock through a budgeted run as ``DevMonitor`` drives it; the progress at each epoch's start.

    Epoch 1 starts with ``compile_batches`` batches of ``compile_seconds`` (one per new shape), then the
    rest of its ``batches`` take ``step`` seconds; its dev evaluation takes ``first_evaluation``, later ones
    ``evaluation``. 5 s of data preparation come before the first epoch.
    """
    clock = TrainingClock(budget=budget, started=0.0, prior_elapsed=prior_elapsed, prior_overhead=prior_overhead)
    now, progress = 5.0, []
    while prior_elapsed + now < budget:
        clock.start_epoch(now)
        progress.append(clock.progress(now, ahead=clock.epoch_seconds() / 2))
        for i in range(batches):
            now += compile_seconds if (len(progress) == 1 and i < compile_batches) else step
            clock.batch_done(now)
        seconds = first_evaluation if len(progress) == 1 else evaluation
        now += seconds
        clock.evaluation(seconds)
    return progress, clock


def test_gpu_like_run_anneals_over_its_training_not_its_compilation():
    # measured shape of a 6-minute H100 run: 17 batch shapes compiled at ~10 s, then 730 steps of 8 ms
    progress, clock = simulate(budget=360, compile_batches=17, compile_seconds=10.0, batches=730, step=0.008,
                               evaluation=0.5, first_evaluation=20.0)
    # counting compilation as training put epoch 2 at (5 + 176 + 20 + 196 / 2) / 360 = 0.83 of the budget
    assert progress[1] < 0.15
    assert all(b > a for a, b in itertools.pairwise(progress))
    assert progress[-1] > 0.9
    assert clock.overhead() == pytest.approx(17 * (10.0 - 0.008) + 20.0 - 0.5, rel=1e-6)
    rates = [cosine_rate(p, base=2e-3, final_fraction=0.01) for p in progress]
    assert rates[1] > 1.9e-3 and rates[-1] < 1e-4


def test_cpu_like_run_without_compilation_outliers_matches_the_plain_share_of_time():
    progress, clock = simulate(budget=3600, compile_batches=0, compile_seconds=0.0, batches=700, step=0.35,
                               evaluation=10.0, first_evaluation=10.0)
    assert clock.overhead() == pytest.approx(0.0)
    epoch = 700 * 0.35 + 10.0
    # from the second evaluation on, the fastest one is the norm: nothing is left out
    assert progress[2] == pytest.approx((5 + 2 * epoch + epoch / 2) / 3600)
    assert progress[1] == pytest.approx((5 + epoch + epoch / 2) / 3600, abs=0.005)  # 1st evaluation unknown


def test_a_resumed_run_counts_earlier_sessions_and_their_compilation():
    fresh, _ = simulate(budget=600, compile_batches=0, compile_seconds=0.0, batches=100, step=1.0,
                        evaluation=5.0, first_evaluation=5.0)
    resumed, _ = simulate(budget=600, compile_batches=0, compile_seconds=0.0, batches=100, step=1.0,
                          evaluation=5.0, first_evaluation=5.0, prior_elapsed=300.0, prior_overhead=100.0)
    assert resumed[0] == pytest.approx((300 + 5 - 100) / (600 - 100))
    assert resumed[0] > fresh[0] and len(resumed) < len(fresh)
