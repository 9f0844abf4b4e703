"""Accuracy and speed of every decoder on the same held-out words.

Usage:
    python benchmarks/decoders.py --uni runs/g2p --twin runs/twin --masked runs/masked --ctc runs/ctc [--limit 2000]

Each model directory is one written by ``biseq train`` on the default data (same split seed, so the
held-out test words are the same). Every decoder runs once to compile, then once timed; words per
second counts decoding only. Prints a Markdown table and writes it as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

from biseq.metrics import score  # noqa: E402
from biseq.training import dev_sample, prepare  # noqa: E402
from biseq.transducer import Transducer  # noqa: E402


def timed(fn):
    fn()  # compile every shape first
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def run_row(name, system, entries, decode):
    sources = system.encode_sources([e.source for e in entries])
    ids, seconds = timed(lambda: decode(system, sources))
    hyps = [" ".join(system.target_vocab.decode(i)) for i in ids]
    s = score(hyps, [[" ".join(t) for t in e.targets] for e in entries])
    return {"decoder": name, "wer": s.wer, "per": s.per, "words_per_second": len(entries) / seconds,
            "words": len(entries)}


def best(nbest):
    return [n[0][0] if n else [] for n in nbest]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uni", help="model dir: unidirectional decoder")
    parser.add_argument("--twin", help="model dir: decoder bilstm, objective twin")
    parser.add_argument("--masked", help="model dir: decoder bilstm, objective masked")
    parser.add_argument("--ctc", nargs="+", default=[], help="model dir(s): decoder bilstm, objective ctc")
    parser.add_argument("--limit", type=int, default=2000, help="held-out words (0: all)")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--json", default="benchmarks/decoders.json")
    args = parser.parse_args()

    rows = []
    entries = None
    runs = [(kind, getattr(args, kind)) for kind in ("uni", "twin", "masked")] + [("ctc", p) for p in args.ctc]
    for kind, path in runs:
        if not path:
            continue
        system = Transducer.load(path)
        if entries is None:
            entries = dev_sample(prepare(system.config).test, args.limit, seed=0)

        if kind == "uni":
            rows.append(run_row("unidirectional, greedy", system, entries, lambda s, x: s.predict_ids(x)))
            rows.append(run_row(f"unidirectional, beam {args.beam}", system, entries,
                                lambda s, x: best(s.predict_nbest_ids(x, beam_size=args.beam))))
        elif kind == "twin":
            for d, label in ((0, "left-to-right only"), (1, "right-to-left only")):
                rows.append(run_row(f"twin {label}, beam {args.beam}", system, entries,
                                    lambda s, x, d=d: best(s.predict_nbest_ids(x, beam_size=args.beam, direction=d))))
            rows.append(run_row(f"twin rescored, beam {args.beam} each way", system, entries,
                                lambda s, x: best(s.predict_nbest_ids(x, beam_size=args.beam))))
        elif kind == "ctc":
            name = f"ctc ({os.path.basename(os.path.normpath(path))})"
            rows.append(run_row(f"{name}, greedy (best alignment)", system, entries, lambda s, x: s.predict_ids(x)))
            rows.append(run_row(f"{name}, prefix beam {args.beam}", system, entries,
                                lambda s, x: best(s.predict_nbest_ids(x, beam_size=args.beam))))
        else:
            for iterations in (1, 2, 4, 8):
                def decode(s, x, iterations=iterations):
                    s.iterations = iterations
                    return s.predict_ids(x)

                rows.append(run_row(f"masked, mask-predict {iterations} iteration(s), 3 lengths", system, entries,
                                    decode))
    print(f"{len(entries)} held-out words of the default data's test split\n")
    print("| decoder | WER % | PER % | words/s |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['decoder']} | {r['wer']:.2f} | {r['per']:.2f} | {r['words_per_second']:.0f} |")
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
