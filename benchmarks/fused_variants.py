# ruff: noqa: B023  (the timed closures run inside the iteration that defines them)
"""Seed-architecture training tok/s: Keras layers vs fused one loop vs one custom-gradient loop per direction.

Usage (repository root): python benchmarks/fused_variants.py keras fused split   (PAIRS=2560 for fewer)
"""
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, "benchmarks")
import keras
import speed
from keras import ops

from biseq import layers, recurrence
from biseq.config import ModelConfig
from biseq.model import Seq2Seq
from biseq.training import MaskedCrossEntropy

_orig = recurrence.lstm_scan

def split_scan(projections, mask, h0, c0, kernel, *, fast=None):
    outs = [_orig(projections[:, d:d + 1], mask[:, d:d + 1] if mask.shape[1] > 1 else mask,
                  h0[d:d + 1], c0[d:d + 1], kernel[d:d + 1]) for d in range(projections.shape[1])]
    return tuple(ops.concatenate([o[i] for o in outs], axis=1 if i == 0 else 0) for i in range(3))

pairs, sv, tv, _ = speed.load_pairs(int(os.environ.get("PAIRS", 3200)))
batches = speed.bucketed(pairs)
for variant in sys.argv[1:]:
    fused = variant != "keras"
    layers.lstm_scan = split_scan if variant == "split" else _orig
    config = ModelConfig(embedding_dim=64, encoder_units=256, decoder="bilstm", decoder_units=256,
                         objective="seed", attention="none", dropout=0.0)
    model = Seq2Seq(config=config, source_vocab_size=sv, target_vocab_size=tv)
    model.encoder.fused = fused
    model.decoder.fused = fused
    model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=5.0), loss=MaskedCrossEntropy())
    for b in {(b.source.shape, b.decoder_input.shape): b for b in batches}.values():
        model.train_on_batch((b.source, b.decoder_input), b.decoder_target, sample_weight=b.weight)
    times = []
    for _ in range(3):
        s = time.perf_counter()
        for b in batches:
            model.train_on_batch((b.source, b.decoder_input), b.decoder_target, sample_weight=b.weight)
        times.append(time.perf_counter() - s)
    tokens = sum(float(b.weight.sum()) for b in batches)
    print(f"{variant:8s} {tokens / statistics.median(times):8.0f} tok/s  {[round(t, 2) for t in times]}", flush=True)
