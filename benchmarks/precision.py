"""Training speed of the main G2P recipe in float32 and with bf16 matrix products (Keras ``mixed_bfloat16``).

The same model (``benchmarks/g2p_cmudict/main.toml``), data sample and batches as ``benchmarks/speed.py``'s
``biseq_main``; the two models are built and compiled first, then their passes over the batches
alternate (float32, bf16, float32, ...) so machine load hits both alike. Reports target tokens/s of
each and the ratio; the WER check is a separate training run (``--precision mixed_bfloat16``).

Usage:
    python benchmarks/precision.py [--pairs 6400] [--repeats 3] [--json benchmarks/precision.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from speed import load_pairs, main_recipe  # noqa: E402

from biseq.batching import make_batches  # noqa: E402
from biseq.model import Seq2Seq  # noqa: E402
from biseq.training import MaskedCrossEntropy  # noqa: E402

POLICIES = ("float32", "mixed_bfloat16")


def build(policy: str, sv: int, tv: int):
    recipe = main_recipe()
    keras.utils.set_random_seed(recipe.train.seed)
    keras.config.set_dtype_policy(policy)
    try:
        model = Seq2Seq(config=recipe.model, source_vocab_size=sv, target_vocab_size=tv)
    finally:
        keras.config.set_dtype_policy("float32")
    model.compile(optimizer=keras.optimizers.Adam(recipe.train.learning_rate, global_clipnorm=recipe.train.clip_norm),
                  loss=MaskedCrossEntropy(label_smoothing=recipe.train.label_smoothing))
    return model


def one_pass(model, batches) -> tuple[float, float]:
    start = time.perf_counter()
    losses = [model.train_on_batch((b.source, b.decoder_input), b.decoder_target, sample_weight=b.weight)
              for b in batches]
    return time.perf_counter() - start, float(np.mean(losses))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default="benchmarks/precision.json")
    args = parser.parse_args()
    pairs, sv, tv, _ = load_pairs(args.pairs)
    batches = make_batches(pairs, batch_size=main_recipe().train.batch_size, rng=np.random.default_rng(1))
    tokens = sum(float(b.weight.sum()) for b in batches)
    models = {p: build(p, sv, tv) for p in POLICIES}
    compile_s = {}
    for p, model in models.items():  # one step per shape: compile them all before timing
        start = time.perf_counter()
        for b in {(b.source.shape, b.decoder_input.shape): b for b in batches}.values():
            model.train_on_batch((b.source, b.decoder_input), b.decoder_target, sample_weight=b.weight)
        compile_s[p] = time.perf_counter() - start
    times: dict[str, list[float]] = {p: [] for p in POLICIES}
    losses: dict[str, list[float]] = {p: [] for p in POLICIES}
    for _ in range(args.repeats):
        for p in POLICIES:
            seconds, loss = one_pass(models[p], batches)
            times[p].append(seconds)
            losses[p].append(loss)
    rate = {p: tokens / statistics.median(times[p]) for p in POLICIES}
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_average_end": os.getloadavg()[0],
        "pairs": len(pairs), "batches": len(batches), "target_tokens_per_pass": tokens,
        "compile_seconds": compile_s, "pass_seconds": times, "mean_loss_per_pass": losses,
        "tokens_per_s": rate, "bf16_over_float32_ratio": rate["mixed_bfloat16"] / rate["float32"],
        "command": "KERAS_BACKEND=jax python benchmarks/precision.py " + " ".join(sys.argv[1:]),
    }
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    for p in POLICIES:
        print(f"{p:15s} {rate[p]:8.0f} target tokens/s  losses {[round(x, 3) for x in losses[p]]}")
    print(f"bf16 / float32: {report['bf16_over_float32_ratio']:.2f}x")


if __name__ == "__main__":
    main()
