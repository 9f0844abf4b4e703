"""Beam search asked for one answer: stopping a word once its best is final, against once all K are.

The bundled English network, beam 5, held-out words in calls of ``--words-per-call``, on the NumPy path
and the compiled one; each path decodes the same words asking for 5 answers (every word runs until its 5
best are final, the search as it was) and for 1 (until its best is), alternating, ``--rounds`` times.
Checks that the best answer (ids and score) is the same both ways and writes the words per second and
their ratio.

    KERAS_BACKEND=jax python benchmarks/beam_settle.py      # -> benchmarks/beam_settle.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).parent))

from g2p_speed import held_out_words  # noqa: E402

import biseq  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=1024)
    parser.add_argument("--words-per-call", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=str(Path(__file__).with_suffix(".json")))
    args = parser.parse_args()

    result: dict = {"machine": {"cpus": os.cpu_count()}, "words": args.words, "words_per_call": args.words_per_call,
                    "beam_size": 5}
    for name, numpy_words in (("numpy", 10**9), ("compiled", 0)):
        g2p = biseq.load(numpy_words=numpy_words)
        decoder = g2p.numpy_decoder if name == "numpy" else g2p.decoder
        words = held_out_words(decoder.config.data, args.words)
        ids = decoder.encode_sources([decoder.tokenize_source(w) for w in words])
        calls = [ids[i: i + args.words_per_call] for i in range(0, len(ids), args.words_per_call)]

        def decode(nbest: int, decoder=decoder, calls=calls):
            return [hyps[0] for call in calls
                    for hyps in decoder.beam_nbest_ids(call, beam_size=5, nbest=nbest)]

        answers = {n: decode(n) for n in (5, 1)}  # also compiles every shape
        differ = sum(a[0] != b[0] or abs(a[1] - b[1]) > 1e-4 for a, b in zip(answers[5], answers[1], strict=True))
        if differ:
            sys.exit(f"{name}: {differ} of {len(words)} best answers differ between nbest 5 and 1")
        seconds: dict[int, list[float]] = {5: [], 1: []}
        for _ in range(args.rounds):
            for n in (5, 1):
                start = time.perf_counter()
                decode(n)
                seconds[n].append(time.perf_counter() - start)
        rate = {n: len(words) / min(s) for n, s in seconds.items()}
        result[name] = {"five_answers_words_per_second": rate[5], "one_answer_words_per_second": rate[1],
                        "one_over_five_answers_speed_ratio": rate[1] / rate[5], "best_answers_differing": differ,
                        "seconds": {str(n): s for n, s in seconds.items()}}
        print(name, {k: v for k, v in result[name].items() if k != "seconds"}, flush=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
