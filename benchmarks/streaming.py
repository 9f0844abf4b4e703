"""Streaming a training file larger than memory: input pipeline speed against the model's, and peak memory.

Usage:
    python benchmarks/streaming.py [--lines 10000000] [--train-minutes 0] [--dir runs/streaming]
                                   [--json benchmarks/streaming.json]

1. Writes a generated transliteration-like TSV of ``--lines`` lines (random letter strings of 3-12
   letters from 26, the target their reversal in capitals, space-separated; about 22 bytes a line).
2. The input pipeline alone, in a fresh process: :func:`biseq.streaming.scan` (the one pass: vocabularies,
   held-out lines, chunk offsets and batch counts), then a whole epoch of batches
   (:class:`biseq.streaming.ChunkedBatches`), in lines/s, with that process's peak RSS.
3. ``biseq train --stream`` for one epoch of the same file with a small model (embedding 32, encoder
   2x64, decoder 128, batch 512), in a fresh process: the model's consumption in pairs/s (from
   ``history.json``) and the peak RSS of the whole training process. ``--train-minutes M`` stops the
   epoch after M minutes (the model at this size consumes a few thousand pairs/s on 2 cores, so a
   whole epoch of 10 million lines takes about an hour): pairs/s and memory are then those of the
   part trained, still streamed from the whole file, and ``full_epoch_estimate_minutes`` says how
   long the epoch would take.

The pipeline must outrun the model (``pipeline_over_model_ratio`` above 1: it runs in the training
loop's thread, so its share of an epoch is about 1 / ratio) and training must stay under 2 GB.
No figure here is asserted anywhere: the tests check behaviour, this file measures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ENV = {**os.environ, "KERAS_BACKEND": "jax"}
BATCH = 512

PIPELINE = r'''
import json, resource, sys, time
from pathlib import Path
from biseq.config import DataConfig
from biseq.streaming import ChunkedBatches, scan, vocabularies
path, batch = Path(sys.argv[1]), int(sys.argv[2])
config = DataConfig(path=str(path), format="tsv", source_split="char", streaming=True,
                    dev_fraction=0.0005, test_fraction=0.0005)
started = time.perf_counter()
found = scan(path, config=config, batch_size=batch)
scanned = time.perf_counter() - started
source_vocab, target_vocab = vocabularies(found)
batches = ChunkedBatches(found, config=config, source_vocab=source_vocab, target_vocab=target_vocab,
                         batch_size=batch, seed=0)
batches.set_epoch(0)
started = time.perf_counter()
rows = 0
for i in range(len(batches)):
    rows += int((batches.batch(i).weight[:, 0] > 0).sum())
served = time.perf_counter() - started
print(json.dumps({"scan_seconds": scanned, "epoch_seconds": served, "pairs": found.train_pairs,
                  "rows_served": rows, "batches": len(batches), "chunks": len(found.chunks),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''


def generate(path: Path, lines: int, *, seed: int = 0) -> float:
    """Write ``lines`` random reversal pairs to ``path``; returns seconds."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    with path.open("w", encoding="utf-8") as f:
        for start in range(0, lines, 100_000):
            n = min(100_000, lines - start)
            lengths = rng.integers(3, 13, size=n)
            codes = rng.integers(0, 26, size=(n, 12))
            out = []
            for length, row in zip(lengths, codes, strict=True):
                word = "".join(letters[row[:length]])
                out.append(f"{word}\t{' '.join(reversed(word.upper()))}\n")
            f.write("".join(out))
    return time.perf_counter() - started


def peak_rss_mb_of(command: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``command``; its result and its peak RSS in MB (``/usr/bin/time``'s figure where it exists)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run(command, capture_output=True, text=True, env=ENV)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return result, max(after, before) / 1024  # the largest child so far: run the biggest one last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--train-minutes", type=float, default=0.0, help="stop the epoch after this (0: no limit)")
    parser.add_argument("--skip-pipeline", action="store_true", help="reuse the pipeline figures in --json")
    parser.add_argument("--dir", default="runs/streaming")
    parser.add_argument("--json", default="benchmarks/streaming.json")
    args = parser.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"generated-{args.lines}.tsv"
    generated = generate(data, args.lines) if not data.exists() else None
    result = {"lines": args.lines, "file_mb": round(data.stat().st_size / 2**20, 1),
              "generate_seconds": None if generated is None else round(generated, 1), "batch_size": BATCH}

    if args.skip_pipeline:
        result["pipeline"] = json.loads(Path(args.json).read_text(encoding="utf-8"))["pipeline"]
    else:
        pipeline = subprocess.run([sys.executable, "-c", PIPELINE, str(data), str(BATCH)], capture_output=True,
                                  text=True, env=ENV)
        assert pipeline.returncode == 0, pipeline.stderr
        p = json.loads(pipeline.stdout.strip().splitlines()[-1])
        result["pipeline"] = {**{k: round(v, 2) if isinstance(v, float) else v for k, v in p.items()},
                              "scan_lines_per_second": round(args.lines / p["scan_seconds"]),
                              "epoch_pairs_per_second": round(p["pairs"] / p["epoch_seconds"])}
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")  # kept if training dies
    p = result["pipeline"]

    out = folder / f"run-{args.lines}"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    _write_config(folder)
    started = time.perf_counter()
    train, rss = peak_rss_mb_of([
        sys.executable, "-m", "biseq.cli", "train", "--data", str(data), "--source-split", "char", "--stream",
        "--out", str(out), "--epochs", "1", "--batch-size", str(BATCH), "--encoder-units", "64",
        "--decoder-units", "128", "--layers", "1", "--time-limit", str(args.train_minutes), "--quiet", "--show", "0",
        "--config", str(folder / "streaming.toml")])
    assert train.returncode == 0, train.stderr[-3000:]
    history = json.loads((out / "history.json").read_text())
    model = history[0]["pairs_per_second"]
    consumed = history[0]["pairs_per_second"] * history[0]["seconds"]
    result["training"] = {"wall_seconds": round(time.perf_counter() - started, 1),
                          "minutes_limit": args.train_minutes, "pairs_consumed": round(consumed),
                          "full_epoch_estimate_minutes": round(p["pairs"] / history[0]["pairs_per_second"] / 60, 1),
                          "epoch_seconds": round(history[0]["seconds"], 1), "pairs_per_second": round(model),
                          "loss": round(history[0]["loss"], 4), "dev_wer": round(history[0]["dev_wer"], 2),
                          "peak_rss_mb": round(rss)}
    result["pipeline_over_model_ratio"] = round(result["pipeline"]["epoch_pairs_per_second"] / model, 2)
    # the pipeline runs in the training loop's thread: its share of a training epoch's time
    result["pipeline_share_of_epoch_percent"] = round(100 * model / result["pipeline"]["epoch_pairs_per_second"], 1)
    result["machine"] = f"{os.cpu_count()} cores"
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))


def _write_config(folder: Path) -> None:
    (folder / "streaming.toml").write_text(
        "[data]\nformat = \"tsv\"\ndev_fraction = 0.0005\ntest_fraction = 0.0005\n\n"
        "[model]\nembedding_dim = 32\n\n[train]\ndev_words = 1000\n", encoding="utf-8")


if __name__ == "__main__":
    main()
