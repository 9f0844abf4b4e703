# ruff: noqa: B023  (the timed closures run inside the iteration that defines them)
"""One bidirectional LSTM layer, forward + backward, same shapes: biseq's JAX loops vs torch nn.LSTM.

Usage: python benchmarks/lstm_layer.py [BATCH ...]   (torch from the bench extra; skipped when missing)
"""
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
import jax
import jax.numpy as jnp
import numpy as np
from timing import median_seconds

from biseq import recurrence_jax
from biseq.recurrence import _generic_lstm_scan

T, E, H = 10, 64, 256
REPS = 30


for B in [int(b) for b in sys.argv[1:]] or [64, 128, 256]:
    flops = 3 * 2 * (2 * T * B * 4 * H * (E + H))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(T, B, E)), jnp.float32)
    wx = jnp.asarray(rng.normal(size=(2, E, 4 * H)) * 0.05, jnp.float32)
    wh = jnp.asarray(rng.normal(size=(2, H, 4 * H)) * 0.05, jnp.float32)
    g = jnp.asarray(rng.normal(size=(T, 2, B, H)), jnp.float32)
    mask = jnp.ones((T, 2, B, 1), jnp.float32)
    h0 = jnp.zeros((2, B, H))
    res = {}
    for name, scan in [("jax custom_vjp", recurrence_jax.lstm_scan), ("jax autodiff scan", _generic_lstm_scan)]:
        def loss(x, wx, wh, scan=scan):
            xs = jnp.stack([x, jnp.flip(x, 0)], axis=1)  # [T, 2, B, E]
            proj = jnp.einsum("tdbe,deg->tdbg", xs, wx)
            out, h, c = scan(proj, mask, h0, h0, wh)
            return jnp.sum(out * g)
        f = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
        res[name] = median_seconds(lambda: jax.block_until_ready(f(x, wx, wh)), repeats=REPS)
    try:
        import torch
        torch.set_num_threads(2)
        lstm = torch.nn.LSTM(E, H, bidirectional=True)
        xt = torch.tensor(np.asarray(x), requires_grad=True)
        gt = torch.tensor(np.asarray(jnp.concatenate([g[:, 0], g[:, 1]], -1)))
        def tstep():
            lstm.zero_grad()
            xt.grad = None
            out, _ = lstm(xt)
            (out * gt).sum().backward()
        res["torch nn.LSTM"] = median_seconds(tstep, repeats=REPS)
    except ImportError:
        pass
    for k, v in res.items():
        print(f"B={B:4d} {k:18s} {v * 1e3:7.2f} ms  {flops / v / 1e9:6.1f} GFLOP/s", flush=True)
