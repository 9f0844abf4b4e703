"""Accuracy against speed of the bundled English system's search settings, on its own held-out words.

Usage:
    python benchmarks/system_tradeoff.py [--limit 0] [--json benchmarks/system_tradeoff.json]

The bundled system (src/biseq/g2p/en) holds out 3 % of the CMU dictionary's words (bundled.toml's
seeded hash split, stress kept); every word here goes through the model, batched in one call, for
each (beam, joint n-best, settle, joint search beam) setting: the beam's candidates and the joint-sequence model's
are scored together (``joint_sequence.joint_nbest`` at the system's joint weight, as ``biseq
predict`` does); with settle (what one answer per word does), a word whose network and joint
bests agree keeps that answer without scoring the others. Each setting runs once to compile its
shapes on the first quarter of the words, then timed on all of them; WER/PER as ``biseq evaluate``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

# (beam, joint n-best, settle): settle (what the system does when one answer is asked): a word whose
# network and joint bests agree keeps it unscored; without, every candidate is scored
# and the joint model's search beam (Phonetisaurus; 2,000 is the systems' setting, JOINT_BEAM)
SETTINGS = [(5, 10, False, 2000), (5, 10, True, 2000), (5, 5, True, 2000), (3, 5, True, 2000), (1, 10, False, 2000),
            (1, 10, True, 2000), (1, 5, False, 2000), (1, 5, True, 2000), (1, 3, True, 2000), (1, 5, True, 1000),
            (1, 5, True, 500)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="held-out words (0: all)")
    parser.add_argument("--json", default="benchmarks/system_tradeoff.json")
    args = parser.parse_args()

    import importlib.resources

    import biseq
    from biseq.config import Config
    from biseq.corpus import read_corpus, split_corpus
    from biseq.joint_sequence import JointModel
    from biseq.joint_sequence import joint_nbest as joint_nbest_fn
    from biseq.metrics import score

    g2p = biseq.load()
    data = Config.load("benchmarks/g2p_cmudict/bundled.toml").data  # the split the bundled model was trained on
    path = importlib.resources.files("biseq.resources") / "cmudict.dict.gz"
    held_out = [e for e in split_corpus(read_corpus(str(path), config=data), data)["dev"]]
    if args.limit:
        held_out = held_out[: args.limit]
    words = ["".join(e.source) for e in held_out]
    refs = [[" ".join(t) for t in e.targets] for e in held_out]
    decoder, joint = g2p.decoder, JointModel.find(g2p.system.joint_path)
    weight = g2p.system.config.joint_weight
    sources = [decoder.tokenize_source(w) for w in words]

    def decode(count, beam, joint_nbest, settle, joint_beam):
        return joint_nbest_fn(decoder, joint, sources[:count], weights=[weight], beam_size=beam,
                              joint_nbest_size=joint_nbest, settle_agreement=settle, joint_beam=joint_beam)[weight]

    rows = []
    for beam, joint_nbest, settle, joint_beam in SETTINGS:
        decode(len(words) // 4, beam, joint_nbest, settle, joint_beam)  # compile this setting's shapes
        started = time.perf_counter()
        ranked = decode(len(words), beam, joint_nbest, settle, joint_beam)
        seconds = time.perf_counter() - started
        s = score([" ".join(hyps[0][0]) if hyps else "" for hyps in ranked], refs)
        rows.append({"beam": beam, "joint_nbest": joint_nbest, "settle_agreement": settle, "joint_beam": joint_beam,
                     "wer": round(s.wer, 2),
                     "per": round(s.per, 2), "words_per_second": round(len(words) / seconds, 1)})
        print(rows[-1], flush=True)
    result = {"words": len(words), "joint_weight": g2p.system.config.joint_weight, "cpus": os.cpu_count(),
              "rows": rows}
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
