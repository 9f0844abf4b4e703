"""JAX fast path of :func:`biseq.recurrence.lstm_scan` (imported only on the JAX backend).

Forward: one ``lax.scan`` that also keeps, per step, the previous state and the activated gates.
Backward: one reverse ``lax.scan`` carrying ``(dh, dc)`` that emits the pre-activation gradients
``dz [T, D, B, 4H]``; outside the loop, ``dW = sum_t h_{t-1}^T dz_t`` is one ``einsum`` over
all steps and ``dz`` is the projections' gradient as it is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _bmm(a, b):
    """``[D, B, K] @ [D, K, N]`` -> ``[D, B, N]``."""
    return jnp.einsum("dbk,dkn->dbn", a, b)


def _forward(projections, mask, h0, c0, kernel):
    def body(carry, inputs):
        h_prev, c_prev = carry
        z_t, m = inputs
        z = z_t + _bmm(h_prev, kernel)
        i, f, g, o = jnp.split(z, 4, axis=-1)
        i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
        c = f * c_prev + i * g
        tanh_c = jnp.tanh(c)
        h = o * tanh_c
        new = (m * h + (1 - m) * h_prev, m * c + (1 - m) * c_prev)
        return new, (m * h, (h_prev, c_prev, jnp.concatenate([i, f, g, o], axis=-1), tanh_c))

    (h, c), (outputs, saved) = jax.lax.scan(body, (h0, c0), (projections, mask))
    return (outputs, h, c), saved


@jax.custom_vjp
def lstm_scan(projections, mask, h0, c0, kernel):
    """See :func:`biseq.recurrence.lstm_scan`."""
    return _forward(projections, mask, h0, c0, kernel)[0]


def _fwd(projections, mask, h0, c0, kernel):
    result, saved = _forward(projections, mask, h0, c0, kernel)
    return result, (saved, mask, kernel)


def _bwd(residuals, cotangents):
    (h_prevs, c_prevs, gates, tanh_cs), mask, kernel = residuals
    d_outputs, d_h, d_c = cotangents
    kernel_t = jnp.swapaxes(kernel, 1, 2)  # [D, 4H, H]

    def body(carry, inputs):
        dh_next, dc_next = carry  # gradients w.r.t. the state carried out of this step
        d_out, m, c_prev, act, tanh_c = inputs
        i, f, g, o = jnp.split(act, 4, axis=-1)
        dh = m * (dh_next + d_out)
        dc = m * dc_next + dh * o * (1 - tanh_c * tanh_c)
        dz = jnp.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g * g),
                              dh * tanh_c * o * (1 - o)], axis=-1)
        dh_prev = _bmm(dz, kernel_t) + (1 - m) * dh_next
        dc_prev = dc * f + (1 - m) * dc_next
        return (dh_prev, dc_prev), dz

    (dh0, dc0), dz = jax.lax.scan(body, (d_h, d_c), (d_outputs, mask, c_prevs, gates, tanh_cs),
                                  reverse=True)
    d_kernel = jnp.einsum("tdbh,tdbg->dhg", h_prevs, dz)
    return dz, jnp.zeros_like(mask), dh0, dc0, d_kernel


lstm_scan.defvjp(_fwd, _bwd)
