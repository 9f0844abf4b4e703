"""Speed of the bundled English G2P system, side by side with g2p-en's neural part in the same run.

Usage:
    python benchmarks/g2p_speed.py [--words 1500] [--single 300] [--json benchmarks/g2p_speed.json]

Measures, on held-out words of the CMU dictionary (the dev split the bundled model never saw):

* batched: ``biseq.load().predict(words, model_only=True)`` (the bundled system's search: since
  2026-12-05 greedy network + 5 joint-sequence candidates, a word whose two bests agree settled
  unscored; beam 5 + 10 candidates before), and the network alone (beam 5; greedy); each once to
  compile every shape, then timed on other words of the same count; the system and the network
  both on the compiled (JAX) path and on the NumPy path;
* words per call: the system at 1, 16, 64, 256 and 1,024 words a call on both paths (warm), the
  figures behind ``biseq.g2p.api.NUMPY_WORDS``;
* one word at a time: ``g2p.predict([word], model_only=True)`` in a loop, warm (NumPy path, and the
  compiled path side by side), against g2p-en's ``G2p.predict(word)`` (its numpy GRU, greedy: the
  part that handles words outside its dictionary) on the same words, as a ratio;
* start-up, as a user runs it, in fresh processes: ``biseq --help``; ``biseq predict hello`` (a
  dictionary word: no Keras, no JAX); an unknown word with an empty compilation cache (cold) and
  again with it filled (warm); the same unknown word on the compiled path (``numpy_words=0``),
  cold and warm.

Writes a JSON with every figure; ratios have "ratio" in their names (above 1: biseq faster).
No figure here is asserted anywhere: the tests check behaviour, this file measures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

OOV = "quizzaciously"  # not in the CMU dictionary


def held_out_words(data_config, count: int, *, seed: int = 0) -> list[str]:
    """``count`` distinct words of the CMU dictionary's dev split (letters only), as the model was split."""
    import importlib.resources

    from biseq.corpus import read_corpus, split_corpus

    path = importlib.resources.files("biseq.resources") / "cmudict.dict.gz"
    entries = read_corpus(str(path), config=data_config)
    words = sorted({"".join(e.source) for e in split_corpus(entries, data_config)["dev"]
                    if "".join(e.source).isalpha()})
    random.Random(seed).shuffle(words)
    return words[:count]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def command_seconds(argv: list[str], *, env: dict[str, str] | None = None) -> float:
    """Wall time of one fresh process (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def startup(biseq: str) -> dict[str, float]:
    compiled = [sys.executable, "-c", f"import biseq; print(biseq.load(numpy_words=0).predict([{OOV!r}]))"]
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "BISEQ_CACHE": cache}
        return {
            "help_s": command_seconds([biseq, "--help"], env=env),
            "dictionary_word_s": command_seconds([biseq, "predict", "hello"], env=env),
            "unknown_word_cold_s": command_seconds([biseq, "predict", OOV], env=env),
            "unknown_word_warm_s": command_seconds([biseq, "predict", OOV], env=env),
            "unknown_word_compiled_path_cold_s": command_seconds(compiled, env=env),
            "unknown_word_compiled_path_warm_s": command_seconds(compiled, env=env),
        }


def g2p_en_predictor():
    """g2p-en's neural ``predict`` without its NLTK downloads (its weights ship in its wheel)."""
    try:
        from g2p_en import g2p as module
    except ImportError:
        return None
    model = module.G2p.__new__(module.G2p)
    model.graphemes = ["<pad>", "<unk>", "</s>"] + list("abcdefghijklmnopqrstuvwxyz")
    model.g2idx = {g: i for i, g in enumerate(model.graphemes)}
    source = Path(module.__file__).read_text(encoding="utf-8")
    start = source.index("self.phonemes = ")
    phonemes = eval(source[start + len("self.phonemes = "): source.index("\n        self.g2idx", start)])  # noqa: S307
    model.phonemes = phonemes
    model.idx2p = dict(enumerate(phonemes))
    model.load_variables()
    return model.predict


def candidate(path: str, *, warm: list[str], timed_words: list[str], single: list[str], bundled: dict) -> dict:
    """Another system's batched and one-word-at-a-time speed on the same words, and over the bundled one's."""
    import biseq

    row: dict = {"path": path}
    for name, numpy_words in (("batched", 0), ("batched_numpy", 10**9)):
        g = biseq.load(path, numpy_words=numpy_words)
        g.predict(warm, model_only=True)
        row[f"{name}_words_per_second"] = len(timed_words) / timed(lambda g=g: g.predict(timed_words, model_only=True))
    for w in single[:5]:
        g.predict([w], model_only=True)
    row["one_at_a_time_words_per_second"] = len(single) / timed(lambda: [g.predict([w], model_only=True)
                                                                         for w in single])
    for name, value in bundled.items():
        row[f"{name}_over_bundled_ratio"] = row[f"{name}_words_per_second"] / value
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=1500, help="words per batched pass (two passes)")
    parser.add_argument("--single", type=int, default=300, help="words decoded one at a time")
    parser.add_argument("--json", default="benchmarks/g2p_speed.json")
    parser.add_argument("--candidate", action="append", default=[], help="another system directory (e.g. a distilled "
                        "network) timed beside the bundled one: batched and one word at a time, as ratios; repeatable")
    args = parser.parse_args()

    import biseq

    biseq_cli = str(Path(sys.executable).with_name("biseq"))
    results: dict = {"machine": {"cpus": os.cpu_count()}, "startup": startup(biseq_cli)}
    print("start-up:", {k: round(v, 2) for k, v in results["startup"].items()}, flush=True)

    g2p = biseq.load(numpy_words=0)  # the compiled path at every size
    fast = biseq.load(numpy_words=10**9)  # the NumPy path at every size
    decoder, numpy_decoder = g2p.decoder, fast.numpy_decoder
    words = held_out_words(decoder.config.data, 2 * args.words + args.single)
    if len(words) < 2 * args.words + args.single:
        parser.error(f"the dev split has {len(words)} words: lower --words or --single")
    warm, timed_words, single = words[: args.words], words[args.words: 2 * args.words], words[2 * args.words:]

    def network(d, beam):
        def run(ws):
            ids = d.encode_sources([d.tokenize_source(w) for w in ws])
            return d.predict_nbest_ids(ids, beam_size=5) if beam else d.predict_ids(ids)
        return run

    batched = {}
    cases = {
        "system_joint": lambda ws: g2p.predict(ws, model_only=True),
        "system_joint_numpy": lambda ws: fast.predict(ws, model_only=True),
        "beam5_network": network(decoder, True),
        "beam5_network_numpy": network(numpy_decoder, True),
        "greedy_network": network(decoder, False),
        "greedy_network_numpy": network(numpy_decoder, False),
    }
    for name, run in cases.items():
        compile_s = timed(lambda run=run: run(warm))
        seconds = timed(lambda run=run: run(timed_words))
        batched[name] = {"words_per_second": len(timed_words) / seconds, "first_pass_s": compile_s}
        print(name, {k: round(v, 1) for k, v in batched[name].items()}, flush=True)
    results["batched"] = batched

    per_call = {}
    for size in (1, 16, 64, 256, 1024):
        calls = max(1, min(64, 1024 // size))
        chunks = [timed_words[(i * size) % len(timed_words):][:size] for i in range(calls)]
        row = {}
        for name, g in (("compiled", g2p), ("numpy", fast)):
            g.predict(warm[:size], model_only=True)  # this call size's shapes compiled (compiled path)
            row[f"{name}_words_per_second"] = calls * size / timed(
                lambda g=g, chunks=chunks: [g.predict(c, model_only=True) for c in chunks])
        row["numpy_over_compiled_ratio"] = row["numpy_words_per_second"] / row["compiled_words_per_second"]
        per_call[str(size)] = row
        print("words per call", size, {k: round(v, 2) for k, v in row.items()}, flush=True)
    results["system_words_per_call"] = per_call

    one = {}
    for name, g in (("numpy", fast), ("compiled", g2p)):
        for w in single[:5]:
            g.predict([w], model_only=True)  # compile the one-row shapes
        one[name] = len(single) / timed(lambda g=g: [g.predict([w], model_only=True) for w in single])
    biseq_single = one["numpy"]
    results["one_at_a_time"] = {"biseq_system_joint_words_per_second": biseq_single,
                                "biseq_system_joint_compiled_path_words_per_second": one["compiled"],
                                "numpy_over_compiled_ratio": one["numpy"] / one["compiled"]}
    predict = g2p_en_predictor()
    if predict is not None:
        g2p_en_single = len(single) / timed(lambda: [predict(w) for w in single])
        results["one_at_a_time"].update({"g2p_en_greedy_words_per_second": g2p_en_single,
                                         "biseq_over_g2p_en_ratio": biseq_single / g2p_en_single})
    else:
        results["one_at_a_time"]["g2p_en"] = "not installed (pip install g2p-en)"
    print("one at a time:", results["one_at_a_time"], flush=True)
    bundled = {"batched": batched["system_joint"]["words_per_second"],
               "batched_numpy": batched["system_joint_numpy"]["words_per_second"], "one_at_a_time": biseq_single}
    for path in args.candidate:
        results.setdefault("candidates", []).append(candidate(path, warm=warm, timed_words=timed_words,
                                                              single=single, bundled=bundled))
        print("candidate:", results["candidates"][-1], flush=True)
    results["goal_ratios"] = {
        "batched_joint_over_500_ratio": max(batched["system_joint"]["words_per_second"],
                                            batched["system_joint_numpy"]["words_per_second"]) / 500,
        "help_under_0_5_s_ratio": 0.5 / results["startup"]["help_s"],
        "dictionary_word_under_0_5_s_ratio": 0.5 / results["startup"]["dictionary_word_s"],
        "unknown_word_warm_under_3_s_ratio": 3.0 / results["startup"]["unknown_word_warm_s"],
    }
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    print(json.dumps(results["goal_ratios"], indent=1))


if __name__ == "__main__":
    main()
