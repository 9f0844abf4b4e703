"""Shared fixtures: a tiny reversal task and small model configurations."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import atexit
import shutil
import tempfile

# biseq's persistent compilation cache: one per test process, not the user's
if "BISEQ_COMPILE_CACHE" not in os.environ:
    os.environ["BISEQ_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="biseq-test-jax-")
    atexit.register(shutil.rmtree, os.environ["BISEQ_COMPILE_CACHE"], ignore_errors=True)
# and its other derived files (parsed dictionary, decompressed joint model, NumPy copies of weights)
if "BISEQ_CACHE" not in os.environ:
    os.environ["BISEQ_CACHE"] = tempfile.mkdtemp(prefix="biseq-test-cache-")
    atexit.register(shutil.rmtree, os.environ["BISEQ_CACHE"], ignore_errors=True)

import numpy as np
import pytest


def reversal_lines(count: int, *, seed: int = 0, letters: str = "abcdef") -> list[str]:
    """TSV lines ``abc<TAB>c b a``: reverse a word, output space-separated letters."""
    rng = np.random.default_rng(seed)
    words = set()
    while len(words) < count:
        n = int(rng.integers(2, 6))
        words.add("".join(rng.choice(list(letters), size=n)))
    return [f"{w}\t{' '.join(reversed(w.upper()))}" for w in sorted(words)]


@pytest.fixture
def tiny_tsv(tmp_path):
    path = tmp_path / "tiny.tsv"
    path.write_text("\n".join(reversal_lines(120)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reversal(tmp_path_factory):
    """A TSV file of 900 reversed words (the non-autoregressive decoders' CI task)."""
    path = tmp_path_factory.mktemp("reversal") / "rev.tsv"
    path.write_text("\n".join(reversal_lines(900, seed=3)) + "\n", encoding="utf-8")
    return path
