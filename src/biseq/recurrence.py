"""The LSTM time loop for one or several directions at once, with a JAX fast path.

:func:`lstm_scan` runs ``D`` independent LSTMs (e.g. the two directions of a bidirectional
layer, the backward one fed each row's real tokens in reverse) in one loop over time. The
input projections are computed by the caller outside the loop, so the loop holds one
batched matmul per step.

Two implementations give the same numbers (tested):

* generic: ``keras.ops.scan``, differentiated by the backend (any Keras backend);
* JAX: a ``jax.custom_vjp`` whose backward loop carries only ``dh, dc`` and emits the gate
  gradients; the recurrent weight gradient is then one large matmul over all steps
  (``[H, T*B] @ [T*B, 4H]``) instead of ``T`` small ones accumulated inside the loop,
  the way fused CPU kernels (oneDNN) do it.
"""

from __future__ import annotations

import keras
from keras import ops


def lstm_gates(z):
    """``z [..., 4H]`` pre-activations (Keras order i, f, g, o) -> activated ``(i, f, g, o)``."""
    i, f, g, o = ops.split(z, 4, axis=-1)
    return ops.sigmoid(i), ops.sigmoid(f), ops.tanh(g), ops.sigmoid(o)


def lstm_scan(projections, mask, h0, c0, recurrent_kernel, *, fast: bool | None = None):
    """Run ``D`` LSTMs over time.

    Args:
        projections: ``[T, D, B, 4H]`` input projections with the bias added.
        mask: ``[T, D, B, 1]`` (or ``[T, 1, B, 1]``) float, 1 at real steps; at a 0 the state carries
            over and the output is 0.
        h0, c0: ``[D, B, H]`` initial states.
        recurrent_kernel: ``[D, H, 4H]``.
        fast: use the JAX custom-gradient loop (default: when the backend is JAX).

    Returns:
        ``(outputs [T, D, B, H], h [D, B, H], c [D, B, H])``: outputs masked, states final.
    """
    if fast is None:
        fast = keras.backend.backend() == "jax"
    if fast:
        from biseq import recurrence_jax

        return recurrence_jax.lstm_scan(projections, mask, h0, c0, recurrent_kernel)
    return _generic_lstm_scan(projections, mask, h0, c0, recurrent_kernel)


def _generic_lstm_scan(projections, mask, h0, c0, recurrent_kernel):
    def body(carry, inputs):
        h_prev, c_prev = carry
        z_t, m = inputs
        i, f, g, o = lstm_gates(z_t + ops.einsum("dbh,dhg->dbg", h_prev, recurrent_kernel))
        c = f * c_prev + i * g
        h = o * ops.tanh(c)
        return (m * h + (1 - m) * h_prev, m * c + (1 - m) * c_prev), m * h

    (h, c), outputs = ops.scan(body, (h0, c0), (projections, mask))
    return outputs, h, c
