"""Where a training step's time goes: ``train_on_batch`` of the G2P main model and of variants, one run.

Usage (from the repository root; pin to one core with ``taskset -c 0`` to see one-core figures):

    python benchmarks/train_step.py                      # all variants
    python benchmarks/train_step.py main enc1 --fused    # some, with the fused encoder path

Each variant is ``benchmarks/g2p_cmudict/main.toml``'s model with one change, trained on one fixed
batch (``--batch`` rows, 8 source and 8 target positions, the median G2P bucket) for ``--steps``
timed steps after one compiling step. Prints ms per step, pairs per second and the ratio of each
variant's step time to the first variant's. Machine noise is large on shared 2-core machines:
repeat a variant (``main enc1 main enc1``) before trusting a difference under ~15 %.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402

from biseq.config import Config  # noqa: E402
from biseq.model import Seq2Seq  # noqa: E402
from biseq.training import BatchSequence, MaskedCrossEntropy  # noqa: E402

MAIN = Config.load(Path(__file__).parent / "g2p_cmudict" / "main.toml").model
VARIANTS = {
    "main": {},
    "enc1": dict(encoder_layers=1),
    "dec256": dict(decoder_units=256),
    "noatt": dict(attention="none"),
    "nodrop": dict(dropout=0.0),
}


def time_variant(name: str, *, batch: int, steps: int, fused: bool = False) -> float:
    """Seconds per training step of variant ``name`` (``fused``: the encoder's fused path)."""
    model = Seq2Seq(config=dataclasses.replace(MAIN, **VARIANTS[name]), source_vocab_size=30,
                    target_vocab_size=42)
    model.encoder.fused = fused
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=MaskedCrossEntropy(label_smoothing=0.1))
    pairs = [(list(range(3, 10)), list(range(3, 9)))] * batch  # 7 letters, 6 phones: widths 8 and 8
    x, y, w = BatchSequence(pairs, batch_size=batch, seed=0)[0]
    model.train_on_batch(x, y, sample_weight=w)  # compiles
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y, sample_weight=w)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", metavar="VARIANT", help=f"any of {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--fused", action="store_true", help="RecurrentEncoder(fused=True) in every variant")
    args = parser.parse_args()
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; expected any of {', '.join(VARIANTS)}")
    names = args.variants or list(VARIANTS)
    first = None
    for name in names:
        seconds = time_variant(name, batch=args.batch, steps=args.steps, fused=args.fused)
        first = first or seconds
        print(f"{name:8s} {seconds * 1000:7.1f} ms/step  {args.batch / seconds:6.0f} pairs/s  "
              f"x{seconds / first:.2f} of {names[0]}", flush=True)


if __name__ == "__main__":
    main()
