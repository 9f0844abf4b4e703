"""The benchmark recipe on one accelerator: compile time (cold, warm cache, fewer shapes), epoch time, words/s.

Usage (on the machine to measure; a GPU when JAX sees one, else the CPU):
    python benchmarks/compile_time.py --data ../shared/data/g014b2b/g014b2b.train \
        [--config benchmarks/g2p_cmudict/main.toml] [--epochs 3] [--max-shapes 6] [--pairs 0] \
        [--json benchmarks/compile_time_gpu.json]

Each phase runs ``biseq train`` (or the decoding) in a fresh process, so nothing compiled stays in memory:

* ``cold``: an empty persistent compilation cache (``BISEQ_COMPILE_CACHE``), the default length buckets;
* ``warm``: the same training again, a new run directory, the cache that ``cold`` filled;
* ``decode``: ``cold``'s model on the dev split, greedy and beam 5, each twice (the first includes the
  compilation of the search loops, the second is the steady speed), with ``cold``'s cache;
* ``fewer``: an empty cache and ``--max-shapes`` padded batch shapes.

Compilation is read from JAX's own monitoring events in each process: tracing, lowering to MLIR,
and the backend compile (or persistent-cache load); epoch times from the run's ``history.json``
(epoch 1 holds the compilations). Phases are skipped once ``--budget`` seconds have passed, and the
JSON is rewritten after each phase, so a cut-off run keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

EVENTS = {"/jax/core/compile/jaxpr_trace_duration": "trace_seconds",
          "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_seconds",
          "/jax/core/compile/backend_compile_duration": "backend_compile_seconds"}


def listen() -> dict:
    """Sum JAX's compilation events of this process into a dict (filled as they come)."""
    import jax

    totals = {name: 0.0 for name in EVENTS.values()} | {"backend_compiles": 0, "cache_hits": 0}

    def on_duration(event, duration, **_):
        if event in EVENTS:
            totals[EVENTS[event]] += duration
            totals["backend_compiles"] += event.endswith("backend_compile_duration")

    def on_event(event, **_):
        totals["cache_hits"] += event == "/jax/compilation_cache/cache_hits"

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)
    return totals


def child_train(args) -> dict:
    totals = listen()
    from biseq.cli import main

    started = time.perf_counter()
    argv = ["train", "--config", args.config, "--data", args.data, "--out", args.out, "--epochs", str(args.epochs),
            "--time-limit", "0", "--quiet", "--show", "0"]
    if args.max_shapes:
        argv += ["--max-shapes", str(args.max_shapes)]
    code = main(argv)
    wall = time.perf_counter() - started
    history = json.loads((Path(args.out) / "history.json").read_text())
    later = history[1:] or history
    return {"exit": code, "wall_seconds": wall, **totals,
            "epoch_seconds": [h["seconds"] for h in history],
            "steady_epoch_seconds": sum(h["seconds"] for h in later) / len(later),
            "steady_pairs_per_second": sum(h["pairs_per_second"] for h in later) / len(later),
            "dev_wer_greedy": [h.get("dev_wer") for h in history]}


def child_decode(args) -> dict:
    totals = listen()
    from biseq import compile_cache

    compile_cache.enable()
    from biseq.training import evaluate, prepare
    from biseq.transducer import Transducer

    transducer = Transducer.load(args.out)
    dev = prepare(transducer.config).dev
    result = {"words": len(dev)}
    for beam in (1, 5):
        for run in ("first", "second"):
            started = time.perf_counter()
            scores, _ = evaluate(transducer, dev, batch_size=256, beam_size=beam)
            seconds = time.perf_counter() - started
            result[f"beam{beam}_{run}_seconds"] = seconds
            result[f"beam{beam}_{run}_words_per_second"] = len(dev) / seconds
        result[f"beam{beam}_wer"], result[f"beam{beam}_per"] = scores.wer, scores.per
    return result | totals


def run_child(phase: str, args, *, out: Path, cache: Path, max_shapes: int = 0, timeout: float) -> dict:
    env = {**os.environ, "KERAS_BACKEND": "jax", "BISEQ_COMPILE_CACHE": str(cache)}
    command = [sys.executable, __file__, "--child", phase, "--config", args.config, "--data", args.data,
               "--out", str(out), "--epochs", str(args.epochs), "--max-shapes", str(max_shapes)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if result.returncode != 0:
        return {"error": result.stderr[-2000:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="benchmarks/g2p_cmudict/main.toml")
    parser.add_argument("--data", default="../shared/data/g014b2b/g014b2b.train")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-shapes", type=int, default=6, help="the 'fewer' phase's shapes")
    parser.add_argument("--pairs", type=int, default=0, help="train on the first N lines only (0: all)")
    parser.add_argument("--dir", default="runs/compile_time")
    parser.add_argument("--budget", type=float, default=480, help="start no phase after this many seconds")
    parser.add_argument("--json", default="benchmarks/compile_time_gpu.json")
    parser.add_argument("--child", choices=["train", "decode"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_train(args) if args.child == "train" else child_decode(args)))
        return

    folder = Path(args.dir)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if args.pairs:
        lines = Path(args.data).read_text(encoding="utf-8").splitlines(keepends=True)[: args.pairs]
        (folder / "data.tsv").write_text("".join(lines), encoding="utf-8")
        args.data = str(folder / "data.tsv")
    import jax

    report = {"device": str(jax.devices()[0].device_kind), "platform": jax.devices()[0].platform,
              "jax": jax.__version__, "config": args.config, "epochs": args.epochs, "pairs": args.pairs or "all",
              "phases": {}}
    try:
        import keras

        report["keras"] = keras.__version__
    except ImportError:
        pass
    started = time.perf_counter()
    phases = [("cold", "train", "cold", "cache-a", 0), ("warm", "train", "warm", "cache-a", 0),
              ("decode", "decode", "cold", "cache-a", 0), ("fewer", "train", "fewer", "cache-b", args.max_shapes)]
    for name, kind, out, cache, shapes in phases:
        left = args.budget - (time.perf_counter() - started)
        if left < 30:
            report["phases"][name] = {"skipped": "budget spent"}
            continue
        report["phases"][name] = run_child(kind, args, out=folder / out, cache=folder / cache, max_shapes=shapes,
                                           timeout=left)
        report["phases"][name]["max_shapes"] = shapes
        print(name, json.dumps(report["phases"][name]), flush=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
