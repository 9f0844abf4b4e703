"""Each decoder combined with the joint-sequence model, on the same held-out words and joint model.

Usage:
    python benchmarks/joint_with_decoders.py --models runs/ar-fresh runs/ctc-u2 --joint runs/ctc-u2/joint.fst
        [--limit 2000] [--weights 0 0.3 0.5 0.7] [--json benchmarks/joint_with_decoders.json]

The model directories are runs of ``biseq train`` on the default data (same split, so the same
held-out test words); the joint model is ``biseq joint-train --model DIR`` of one of them (trained on
that split's training words). An autoregressive model brings its beam-5 n-best, a ``ctc`` model its
one-pass output; the joint model's 10-best join them and every candidate is ranked by
``(1 - w) log p + w (-cost)`` (:func:`biseq.joint_sequence.joint_nbest`). Words per second count all
the weights at once, after a warm-up call.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

from biseq.joint_sequence import JointModel, joint_nbest  # noqa: E402
from biseq.metrics import score  # noqa: E402
from biseq.training import dev_sample, prepare  # noqa: E402
from biseq.transducer import Transducer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--joint", required=True)
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--weights", nargs="+", type=float, default=[0.0, 0.3, 0.5, 0.7])
    parser.add_argument("--json", default="benchmarks/joint_with_decoders.json")
    args = parser.parse_args()
    joint = JointModel(Path(args.joint))
    rows, entries = [], None
    for path in args.models:
        model = Transducer.load(path)
        if entries is None:
            entries = dev_sample(prepare(model.config).test, args.limit, seed=0)
        refs = [[" ".join(t) for t in e.targets] for e in entries]
        sources = [e.source for e in entries]
        joint_nbest(model, joint, sources[:64], weights=args.weights)  # compile
        start = time.perf_counter()
        ranked = joint_nbest(model, joint, sources, weights=args.weights)
        rate = len(sources) / (time.perf_counter() - start)
        for w, lists in ranked.items():
            s = score([" ".join(hyps[0][0]) if hyps else "" for hyps in lists], refs)
            rows.append({"model": path, "objective": model.model.objective, "joint_weight": w, "wer": s.wer,
                         "per": s.per, "words_per_second_all_weights": rate, "words": len(entries)})
            print(f"| {path} ({model.model.objective}) | {w} | {s.wer:.2f} | {s.per:.2f} | {rate:.0f} |", flush=True)
    Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
