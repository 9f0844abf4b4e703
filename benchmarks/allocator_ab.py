"""Training step time under glibc's allocator and under tcmalloc, alternating, in fresh processes.

Usage:
    python benchmarks/allocator_ab.py [--rounds 3] [--steps 40] [--json benchmarks/allocator_ab.json]

Each run is ``benchmarks/train_step.py main`` (the main G2P recipe's model, one 128 x 8 x 8 batch,
``--steps`` timed steps after compiling) in a new process, with ``LD_PRELOAD`` unset (glibc) or
naming tcmalloc (what ``biseq train`` does by itself where the library is installed:
``biseq.allocator``); the two alternate over ``--rounds`` rounds. Reports ms per step per run and
the ratio of the medians (above 1: tcmalloc faster). Needs tcmalloc (Debian/Ubuntu:
``apt-get install libtcmalloc-minimal4``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path


def step_ms(preload: str, steps: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if preload:
        env["LD_PRELOAD"] = preload
    env.setdefault("KERAS_BACKEND", "jax")
    script = Path(__file__).with_name("train_step.py")
    out = subprocess.run([sys.executable, str(script), "main", "--steps", str(steps)], capture_output=True, text=True,
                         env=env, check=True).stdout
    return float(re.search(r"^\s*main\s+([0-9.]+) ms/step", out, re.M).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--library", default="", help="the tcmalloc library (default: found as biseq train finds it)")
    parser.add_argument("--json", default="benchmarks/allocator_ab.json")
    args = parser.parse_args()
    from biseq.allocator import find_tcmalloc

    library = args.library or find_tcmalloc()
    if library is None:
        sys.exit("no tcmalloc library found (apt-get install libtcmalloc-minimal4)")
    runs: dict[str, list[float]] = {"glibc": [], "tcmalloc": []}
    for _ in range(args.rounds):
        for name, preload in (("glibc", ""), ("tcmalloc", library)):
            runs[name].append(step_ms(preload, args.steps))
            print(name, runs[name][-1], "ms/step", flush=True)
    result = {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "library": library, "steps": args.steps,
              "ms_per_step": runs,
              "tcmalloc_over_glibc_speed_ratio": statistics.median(runs["glibc"]) / statistics.median(runs["tcmalloc"]),
              "command": "python benchmarks/allocator_ab.py " + " ".join(sys.argv[1:])}
    print(json.dumps(result, indent=1))
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
