"""Two decoder families and the joint-sequence model scoring one pool of candidates (G2P accuracy).

Usage:
    python benchmarks/two_decoders_joint.py --ar runs/ar-fresh --ctc runs/ctc-u2 --joint runs/ctc-u2/joint.fst
        [--limit 2000] [--json benchmarks/two_decoders_joint.json]

Both model directories are ``biseq train`` runs on the default data (same split, same vocabularies);
the joint model is ``biseq joint-train`` on that split's training words. Per word, the pool is the
autoregressive model's beam-5 n-best, the ``ctc`` model's one-pass output and the joint model's 10
best; every candidate gets three scores: the autoregressive ``log p`` (teacher forced), the CTC
``log p`` (exact, summed over alignments) and the joint model's ``-cost``. Ranked by
``(1 - w) ((1 - c) log p_ar + c log p_ctc) + w (-cost)``: ``c = 0`` is the autoregressive model with
the joint model (what the bundled system does), ``c = 1`` the ctc model with it. The weights
``(w, c)`` are chosen on held-out dev words, then the test words are scored once with them; each row
of the grid is in the JSON for both splits.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")

from biseq.joint_sequence import MISSING_MARGIN, JointModel  # noqa: E402
from biseq.metrics import score  # noqa: E402
from biseq.training import dev_sample, prepare  # noqa: E402
from biseq.transducer import Transducer  # noqa: E402

JOINT_WEIGHTS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8)
CTC_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


def pools(ar: Transducer, ctc: Transducer, joint: JointModel, entries) -> tuple[list, np.ndarray]:
    """Per word its candidates (id tuples), and ``[M, 3]`` scores (log p ar, log p ctc, -cost) of them all."""
    sources = ar.encode_sources([e.source for e in entries])
    beams = ar.beam_nbest_ids(sources, beam_size=5, nbest=5)
    one_pass = ctc.predict_ids(sources)
    listed = joint.nbest(["".join(e.source) for e in entries], nbest=10)
    vocab = ar.target_vocab
    words, flat_sources, flat_outputs, costs = [], [], [], []
    for i, (beam, out, theirs) in enumerate(zip(beams, one_pass, listed, strict=True)):
        cost = {tuple(vocab.encode(t, warn=False)): c for t, c in reversed(theirs) if all(x in vocab for x in t)}
        floor = max(cost.values(), default=-MISSING_MARGIN) + MISSING_MARGIN  # as combine(): unseen by the joint model
        pool = [c for c in dict.fromkeys([*(tuple(h) for h, _, _ in beam), tuple(out), *cost]) if c]
        words.append(pool)
        for candidate in pool:
            flat_sources.append(sources[i])
            flat_outputs.append(list(candidate))
            costs.append(-cost.get(candidate, floor))
    scores = np.stack([ar.output_log_probs(flat_sources, flat_outputs),
                       ctc.output_log_probs(flat_sources, flat_outputs), np.asarray(costs)], axis=1)
    return words, scores


def rank(words, scores, w: float, c: float, vocab) -> list[str]:
    total = (1 - w) * ((1 - c) * scores[:, 0] + c * scores[:, 1]) + w * scores[:, 2]
    best, at = [], 0
    for pool in words:
        part = total[at : at + len(pool)]
        best.append(" ".join(vocab.decode(list(pool[int(np.argmax(part))]))) if pool else "")
        at += len(pool)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ar", required=True)
    parser.add_argument("--ctc", required=True)
    parser.add_argument("--joint", required=True)
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--json", default="benchmarks/two_decoders_joint.json")
    args = parser.parse_args()
    ar, ctc, joint = Transducer.load(args.ar), Transducer.load(args.ctc), JointModel(Path(args.joint))
    if ar.target_vocab != ctc.target_vocab or ar.source_vocab != ctc.source_vocab:
        parser.error("the two models were trained on different vocabularies: train both on the same data")
    data = prepare(ar.config)
    splits = {"dev": dev_sample(data.dev, args.limit, seed=0), "test": dev_sample(data.test, args.limit, seed=0)}
    result = {"ar": args.ar, "ctc": args.ctc, "joint": args.joint, "grid": {}}
    for name, entries in splits.items():
        started = time.perf_counter()
        words, scores = pools(ar, ctc, joint, entries)
        result[f"{name}_seconds"] = round(time.perf_counter() - started, 1)
        refs = [[" ".join(t) for t in e.targets] for e in entries]
        grid = result["grid"][name] = []
        for w in JOINT_WEIGHTS:
            for c in CTC_SHARES:
                s = score(rank(words, scores, w, c, ar.target_vocab), refs)
                grid.append({"joint_weight": w, "ctc_share": c, "wer": round(s.wer, 2), "per": round(s.per, 2)})
        result[f"{name}_words"] = len(entries)
        result[f"{name}_candidates_per_word"] = round(len(scores) / len(entries), 2)
    dev = result["grid"]["dev"]
    test = {(r["joint_weight"], r["ctc_share"]): r for r in result["grid"]["test"]}
    chosen = {}
    for label, allowed in (("ar_with_joint", (0.0,)), ("ctc_with_joint", (1.0,)), ("both_with_joint", CTC_SHARES)):
        best = min((r for r in dev if r["ctc_share"] in allowed), key=lambda r: (r["wer"], r["per"]))
        key = (best["joint_weight"], best["ctc_share"])
        chosen[label] = {"joint_weight": key[0], "ctc_share": key[1], "dev_wer": best["wer"], "dev_per": best["per"],
                         "test_wer": test[key]["wer"], "test_per": test[key]["per"]}
        print(label, chosen[label], flush=True)
    result["chosen_on_dev"] = chosen
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
