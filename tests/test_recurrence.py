"""The LSTM loop: the JAX custom-gradient path against the generic scan, values and gradients."""

import keras
import numpy as np
import pytest

from biseq.recurrence import lstm_scan

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax", reason="the fast path is JAX's")


def test_fast_path_matches_generic_values_and_gradients():
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    t, d, b, h = 7, 2, 5, 6
    projections = jnp.asarray(rng.normal(size=(t, d, b, 4 * h)), jnp.float32)
    lengths = np.array([7, 3, 1, 5, 6])
    forward = np.arange(t)[:, None] < lengths[None, :]
    # the second direction sees the sequence flipped: padding first
    mask = jnp.asarray(np.stack([forward, forward[::-1]], axis=1)[..., None], jnp.float32)
    h0, c0 = (jnp.asarray(rng.normal(size=(d, b, h)), jnp.float32) for _ in range(2))
    kernel = jnp.asarray(rng.normal(size=(d, h, 4 * h)) * 0.3, jnp.float32)
    w_out, w_h = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in ((t, d, b, h), (d, b, h)))

    def loss(fast):
        def f(projections, h0, c0, kernel):
            outputs, h, c = lstm_scan(projections, mask, h0, c0, kernel, fast=fast)
            return jnp.sum(outputs * w_out) + jnp.sum(h * w_h) + jnp.sum(jnp.sin(c))
        return f

    generic, fast = loss(False), loss(True)
    np.testing.assert_allclose(fast(projections, h0, c0, kernel), generic(projections, h0, c0, kernel), rtol=1e-6)
    args = (projections, h0, c0, kernel)
    for a, b_ in zip(jax.grad(fast, argnums=(0, 1, 2, 3))(*args), jax.grad(generic, argnums=(0, 1, 2, 3))(*args),
                     strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b_), atol=2e-6)
    # padded steps carry the state: a row of length 1 ends (forward) with the state after its first step
    outputs, h_final, _ = lstm_scan(projections, mask, h0, c0, kernel, fast=True)
    np.testing.assert_allclose(np.asarray(h_final[0, 2]), np.asarray(outputs[0, 0, 2]), rtol=1e-6)
    assert not np.asarray(outputs[1:, 0, 2]).any()
