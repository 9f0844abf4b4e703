# ruff: noqa: B023  (the timed closures run inside the iteration that defines them)
"""Per-step recurrent GEMM [B,256]@[256,1024], 10 steps in a loop: XLA scan vs torch loop.

Usage: python benchmarks/recurrent_gemm.py   (needs torch, the bench extra)
"""
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
import jax
import jax.numpy as jnp
import numpy as np
import torch
from timing import median_seconds

torch.set_num_threads(2)
H, T = 256, 10
for B in (64, 128, 256):
    w = np.random.default_rng(0).normal(size=(H, 4 * H)).astype(np.float32) * 0.05
    h = np.ones((B, H), np.float32)
    wj, hj = jnp.asarray(w), jnp.asarray(h)
    f = jax.jit(lambda h, w: jax.lax.scan(lambda c, _: (jnp.tanh(c @ w)[:, :H], None), h, None, length=T)[0])
    g = jax.jit(lambda h, w: jnp.tanh(h @ w))
    wt, ht = torch.tensor(w), torch.tensor(h)
    def tl():
        c = ht
        for _ in range(T):
            c = torch.tanh(c @ wt)[:, :H]
    flops = 2 * B * H * 4 * H * T
    a = median_seconds(lambda: jax.block_until_ready(f(hj, wj)), repeats=200)
    b = median_seconds(lambda: jax.block_until_ready(g(hj, wj)), repeats=200) * T
    c = median_seconds(tl, repeats=200)
    print(f"B={B}: XLA scan {flops/a/1e9:5.1f} GFLOP/s ({a/T*1e6:.0f} us/step); XLA one GEMM {flops/b/1e9:5.1f}; torch loop {flops/c/1e9:5.1f} ({c/T*1e6:.0f} us/step)")
