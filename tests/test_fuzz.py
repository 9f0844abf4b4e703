"""A short fuzzing profile of every target in tests/fuzz_targets.py (the long run: python -m tests.fuzz_targets)."""

import pytest

from tests.fuzz_targets import TARGETS, run_target


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_arbitrary_input_raises_only_documented_errors(name):
    assert run_target(name, 60) >= 30  # hypothesis ran (at least half of the asked cases)
