"""Skipping the joint-sequence search for words the network is sure of: accuracy and speed, one run.

Usage:
    python benchmarks/joint_gate.py [--system DIR] [--data FILE --split dev] [--gates 0,0.85,0.9,0.93]
        [--json benchmarks/joint_gate.json]

A system answers one pronunciation a word with its network's beam and the joint-sequence model's
n-best, combined (``joint_sequence.joint_nbest``, as ``biseq predict`` does, settling agreed words).
With ``skip_joint_above`` Q, a word whose network best has a geometric-mean token probability of at
least Q keeps it without the joint model's search. For each Q (0: every word searched, the
reference) this scores the words and times the whole combination (network, joint n-best, scoring)
on the NumPy path (``biseq.load``'s for up to 256 words a call) in calls of ``--call-words`` words,
each setting once to warm up on the first quarter, then timed; the settings alternate over
``--rounds`` rounds (0: accuracy only) and the fastest round counts. Defaults: the bundled English system on its own
held-out words (bundled.toml's split, stress kept). ``--system runs/g014b2b-distill-data/teacher
--data ../shared/data/g014b2b/g014b2b.train --split dev`` checks the same gate on another model and
split, not used to choose it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="", help="system directory (default: the bundled one)")
    parser.add_argument("--data", default="", help="a data file to score (default: the bundled held-out words)")
    parser.add_argument("--split", default="dev", help="its split, as the system's model split it (dev)")
    parser.add_argument("--gates", default="0,0.85,0.9,0.93")
    parser.add_argument("--call-words", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="words (0: all)")
    parser.add_argument("--json", default="benchmarks/joint_gate.json")
    args = parser.parse_args()

    import importlib.resources

    import numpy as np

    import biseq
    from biseq.config import Config
    from biseq.corpus import read_corpus, split_corpus
    from biseq.joint_sequence import joint_nbest
    from biseq.metrics import score

    g2p = biseq.load(args.system or None, numpy_words=10**9)
    net, joint, config = g2p.numpy_decoder, g2p.joint_model, g2p.system.config
    if args.data:
        data, path = net.config.data, args.data
    else:
        data = Config.load("benchmarks/g2p_cmudict/bundled.toml").data
        path = str(importlib.resources.files("biseq.resources") / "cmudict.dict.gz")
    entries = split_corpus(read_corpus(path, config=data), data)[args.split]
    if args.limit:
        entries = entries[: args.limit]
    sources = [net.tokenize_source("".join(e.source)) for e in entries]
    refs = [[" ".join(t) for t in e.targets] for e in entries]
    gates = [float(g) for g in args.gates.split(",")]
    weight = config.joint_weight

    def decode(part, gate):
        return joint_nbest(net, joint, part, weights=[weight], beam_size=config.beam,
                           joint_nbest_size=config.joint_nbest, length_penalty=config.length_penalty,
                           settle_agreement=True, skip_joint_above=gate)[weight]

    def in_calls(gate):
        out = []
        for start in range(0, len(sources), args.call_words):
            out.extend(decode(sources[start: start + args.call_words], gate))
        return out

    beams = net.beam_nbest_ids(net.encode_sources(sources), beam_size=config.beam, nbest=1,
                               length_penalty=config.length_penalty)
    per_token = np.array([h[0][2] / (len(h[0][0]) + 1) if h else -math.inf for h in beams])
    rows = {g: {"skip_joint_above": g, "skipped_percent": round(100 * float(np.mean(per_token >= math.log(g))), 1)
                if g > 0 else 0.0, "seconds": []} for g in gates}
    for g in gates:
        decode(sources[: len(sources) // 4], g)  # warm up
        ranked = in_calls(g)
        s = score([" ".join(h[0][0]) if h else "" for h in ranked], refs)
        rows[g].update(wer=round(s.wer, 2), per=round(s.per, 2))
    for _ in range(args.rounds):
        for g in gates:
            started = time.perf_counter()
            in_calls(g)
            rows[g]["seconds"].append(round(time.perf_counter() - started, 2))
    for g in gates:
        if args.rounds:
            rows[g]["words_per_second"] = round(len(sources) / min(rows[g]["seconds"]), 1)
            rows[g]["speed_over_first_ratio"] = round(min(rows[gates[0]]["seconds"]) / min(rows[g]["seconds"]), 3)
        print(rows[g], flush=True)
    result = {"system": args.system or "bundled", "data": args.data or "bundled held-out words", "split": args.split,
              "words": len(sources), "beam": config.beam, "joint_nbest": config.joint_nbest, "joint_weight": weight,
              "call_words": args.call_words, "cpus": os.cpu_count(), "load_average": os.getloadavg(),
              "rows": list(rows.values())}
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
