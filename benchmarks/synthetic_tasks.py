"""Held-out exact match of each bidirectional-decoder objective on the reverse and copy tasks.

The task of issue 29: random sequences of 3-9 letters over 12 letters, 4,000 training pairs,
500 dev, 500 test; the output is the sequence reversed (``reverse``) or as it is (``copy``),
letters space-separated. Each objective is trained as a new user would
(``biseq train --data TRAIN --source-split char --dev DEV --decoder bilstm --objective OBJ --epochs 40``),
then scored on the test words with ``biseq evaluate --split all`` (greedy; mask-predict 4 iterations).

Usage:
    python benchmarks/synthetic_tasks.py [--objectives ctc masked twin] [--tasks reverse copy]
        [--epochs 40] [--json benchmarks/synthetic_tasks.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LETTERS = "abcdefghijkl"


def write_task(directory: Path, task: str, *, seed: int = 29) -> dict[str, Path]:
    """``train.tsv`` (4,000), ``dev.tsv`` (500), ``test.tsv`` (500): distinct random words."""
    rng = np.random.default_rng(seed)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < 5000:
        w = "".join(rng.choice(list(LETTERS), size=int(rng.integers(3, 10))))
        if w not in seen:
            seen.add(w)
            words.append(w)
    paths = {}
    for name, part in (("train", words[:4000]), ("dev", words[4000:4500]), ("test", words[4500:])):
        out = [f"{w}\t{' '.join(reversed(w) if task == 'reverse' else w)}" for w in part]
        paths[name] = directory / f"{task}-{name}.tsv"
        paths[name].write_text("\n".join(out) + "\n", encoding="utf-8")
    return paths


def biseq(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "biseq.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": "jax"})
    if done.returncode:
        raise SystemExit(f"biseq {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", nargs="+", default=["ctc", "masked", "twin"])
    parser.add_argument("--tasks", nargs="+", default=["reverse", "copy"])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--json", default="benchmarks/synthetic_tasks.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            paths = write_task(Path(tmp), task)
            for objective in args.objectives:
                out = Path(tmp) / f"{task}-{objective}"
                started = time.perf_counter()
                biseq("train", "--data", str(paths["train"]), "--format", "tsv", "--source-split", "char", "--dev",
                      str(paths["dev"]), "--decoder", "bilstm", "--objective", objective, "--epochs",
                      str(args.epochs), "--time-limit", "0", "--out", str(out), "--quiet", "--show", "0")
                seconds = time.perf_counter() - started
                report = biseq("evaluate", "--model", str(out), "--data", str(paths["test"]), "--format", "tsv",
                               "--split", "all")
                exact = re.search(r"exact ([\d.]+)%", report)
                if exact is None:
                    raise SystemExit(f"no exact match in the evaluation report:\n{report}")
                rows.append({"task": task, "objective": objective, "test_exact_percent": float(exact.group(1)),
                             "train_seconds": round(seconds, 1), "test_words": 500})
                print(f"{task:8s} {objective:8s} exact {float(exact.group(1)):6.2f}%  ({seconds:.0f} s)", flush=True)
    Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
