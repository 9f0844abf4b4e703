"""How data-parallel training throughput scales with devices and processes, measured and on paper.

Usage:
    python benchmarks/parallel_scaling.py [--pairs 20000] [--json benchmarks/parallel_scaling.json]

Measured, each in a fresh process on the same data (the first ``--pairs`` CMU dictionary training
pairs) and model (benchmarks/g2p_cmudict/quick.toml's, global batch 64), 3 epochs, the mean
pairs/s of epochs 2-3 (epoch 1 compiles): one device; 2 virtual CPU devices in one process
(``XLA_FLAGS=--xla_force_host_platform_device_count=2 --devices 2``); 2 local processes of one
device each. On a 2-core machine the devices share the same two cores, so this measures the
overhead of the mesh and the collectives, not a speed-up; a speed-up needs devices with their own
compute (GPUs, hosts).

On paper, for more hosts: a step of synchronous data parallelism costs the step's compute plus a
ring all-reduce of the gradients, ``2 (P - 1) / P * gradient bytes / bandwidth`` (no overlap
assumed, so a lower bound on efficiency). The gradient size comes from the model's parameter count,
the compute from the measured one-device step time here and the GPU step time measured on an H100
(README, "On a GPU"); efficiencies are given for 10 Gb/s Ethernet, 100 Gb/s InfiniBand, and NVLink.
No figure here is asserted anywhere: the tests check behaviour, this file measures.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ENV = {**os.environ, "KERAS_BACKEND": "jax"}
BANDWIDTHS = {"10GbE": 1.25e9, "100Gb_InfiniBand": 12.5e9, "NVLink_H100": 450e9}
H100_MAIN_STEP_SECONDS = 6.3 / (120_000 / 128)  # main.toml: 5.7-7.0 s an epoch of ~120k pairs, batch 128


def train(data: Path, out: Path, *more: str, env=ENV, wait=True):
    command = [sys.executable, "-m", "biseq.cli", "train", "--config", "benchmarks/g2p_cmudict/quick.toml",
               "--data", str(data), "--out", str(out), "--epochs", "3", "--time-limit", "0",
               "--quiet", "--show", "0", *more]
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def steady(out: Path) -> float:
    history = json.loads((out / "history.json").read_text())
    later = history[1:] or history
    return sum(h["pairs_per_second"] for h in later) / len(later)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--dir", default="runs/parallel_scaling")
    parser.add_argument("--json", default="benchmarks/parallel_scaling.json")
    args = parser.parse_args()
    folder = Path(args.dir)
    subprocess.run(["rm", "-rf", str(folder)], check=True)
    folder.mkdir(parents=True)
    lines = Path("../shared/data/g014b2b/g014b2b.train").read_text(encoding="utf-8").splitlines()[: args.pairs]
    data = folder / "train.tsv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")

    train(data, folder / "one")
    train(data, folder / "two-devices", "--devices", "2",
          env={**ENV, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    join = ["--num-processes", "2", "--coordinator", f"127.0.0.1:{port}"]
    second = train(data, folder / "two-processes", *join, "--process-id", "1", wait=False)
    train(data, folder / "two-processes", *join, "--process-id", "0")
    assert second.wait() == 0, second.stderr.read()[-3000:]

    one = steady(folder / "one")
    result = {"pairs": args.pairs, "machine": f"{os.cpu_count()} cores, CPU", "pairs_per_second": {
        "one_device": round(one), "two_cpu_devices": round(steady(folder / "two-devices")),
        "two_processes": round(steady(folder / "two-processes"))}}
    result["two_cpu_devices_over_one_ratio"] = round(result["pairs_per_second"]["two_cpu_devices"] / one, 2)
    result["two_processes_over_one_ratio"] = round(result["pairs_per_second"]["two_processes"] / one, 2)

    from biseq.config import Config
    from biseq.transducer import Transducer
    from biseq.vocabulary import SPECIALS, Vocabulary

    params = {}
    for name in ("quick", "main"):
        cfg = Path(f"benchmarks/g2p_cmudict/{name}.toml")
        t = Transducer(config=Config.load(cfg), source_vocab=Vocabulary([*SPECIALS, *"abcdefghijklmnopqrstuvwxyz'"]),
                       target_vocab=Vocabulary([*SPECIALS, *(f"P{i}" for i in range(40))]))
        params[name] = t.model.count_params()
    cpu_step = Config.load(Path("benchmarks/g2p_cmudict/quick.toml")).train.batch_size / one
    paper = {}
    for name, step in (("quick_cpu_2core", cpu_step), ("main_h100", H100_MAIN_STEP_SECONDS)):
        gradient_bytes = 4 * params["main" if "main" in name else "quick"]
        rows = {}
        for hosts in (2, 8, 32):
            for link, bandwidth in BANDWIDTHS.items():
                reduce = 2 * (hosts - 1) / hosts * gradient_bytes / bandwidth
                rows[f"{hosts}x_{link}"] = {"allreduce_ms": round(1000 * reduce, 2),
                                            "efficiency_percent": round(100 * step / (step + reduce), 1)}
        paper[name] = {"parameters": params["main" if "main" in name else "quick"],
                       "gradient_mb": round(gradient_bytes / 2**20, 1), "step_ms": round(1000 * step, 2),
                       "scaling": rows}
    result["on_paper"] = paper
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
