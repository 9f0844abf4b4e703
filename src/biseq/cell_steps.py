"""One time step of Keras LSTM/GRU cells, and of a decoder's stack of them, from their weights as tensors.

Functions only: the weights stay in the Keras cells that own them (see
:class:`biseq.layers.RecurrentDecoder`) and are read once per call as :class:`CellWeights`.

Shapes: ``B`` batch, ``I`` a layer's input size, ``D`` units, ``G`` gate width
(``4D`` LSTM, ``3D`` GRU).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from keras import ops


def lstm_step(z, c_prev):
    """Keras LSTM gates from pre-activations ``z [B, 4D]`` (order i, f, g, o)."""
    i, f, g, o = ops.split(z, 4, axis=-1)
    c = ops.sigmoid(f) * c_prev + ops.sigmoid(i) * ops.tanh(g)
    return ops.sigmoid(o) * ops.tanh(c), c


def gru_step(x_proj, h_prev, recurrent_kernel, recurrent_bias, h_recurrent=None):
    """Keras GRU (``reset_after=True``) from the input projection ``x_proj [B, 3D]``.

    ``h_recurrent``: ``h_prev`` as the recurrent matmul reads it (e.g. after recurrent dropout).
    """
    x_z, x_r, x_h = ops.split(x_proj, 3, axis=-1)
    inner = ops.matmul(h_prev if h_recurrent is None else h_recurrent, recurrent_kernel) + recurrent_bias
    r_z, r_r, r_h = ops.split(inner, 3, axis=-1)
    z = ops.sigmoid(x_z + r_z)
    r = ops.sigmoid(x_r + r_r)
    candidate = ops.tanh(x_h + r * r_h)
    return z * h_prev + (1.0 - z) * candidate


class CellWeights(NamedTuple):
    """One recurrent layer's weights as tensors."""

    kernel: Any  # [I, G]; layer 1 under input feeding: the embedding's rows only
    feed_kernel: Any  # [D, G] layer 1's rows for a_{t-1} under input feeding, else None
    recurrent_kernel: Any  # [D, G]
    input_bias: Any  # [G]
    recurrent_bias: Any  # [G] (GRU, reset_after), None for an LSTM


def cell_weights(cells: Sequence, *, kind: str, embedding_dim: int, feed_size: int) -> list[CellWeights]:
    """The :class:`CellWeights` of a stack of Keras ``LSTMCell``/``GRUCell`` (``kind`` ``lstm``/``gru``).

    ``feed_size`` non-zero: layer 1 reads ``[embedding (embedding_dim); a_{t-1} (feed_size)]``, and
    its kernel is split into those two parts.
    """
    out = []
    for i, cell in enumerate(cells):
        kernel = ops.convert_to_tensor(cell.kernel)
        feed_kernel = None
        if i == 0 and feed_size:
            kernel, feed_kernel = kernel[:embedding_dim], kernel[embedding_dim:]
        bias = ops.convert_to_tensor(cell.bias)
        if kind == "gru":
            in_bias, rec_bias = bias[0], bias[1]
        else:
            in_bias, rec_bias = bias, None
        out.append(CellWeights(kernel, feed_kernel, ops.convert_to_tensor(cell.recurrent_kernel), in_bias, rec_bias))
    return out


def stack_step(state, x_proj, weights: Sequence[CellWeights], *, kind: str,
               feed_attend: Callable | None = None, recurrent_masks=None):
    """One time step of the stack from the layer-1 input projection ``x_proj [B, G]``.

    Args:
        state: ``(layer states, a_{t-1})``; layer states are ``(h, c)`` (LSTM) or ``(h,)`` (GRU),
            each ``[B, D]``; ``a_{t-1}`` is ``[B, D]`` under input feeding, else ``()``.
        weights: from :func:`cell_weights`.
        kind: ``lstm`` or ``gru``.
        feed_attend: input feeding: ``h_t [B, 1, D] -> a_t [B, 1, D]`` (attend), fed to the next step's
            layer 1; ``None`` without input feeding.
        recurrent_masks: per layer ``[B, D]`` (scaled) dropout masks applied to ``h_{t-1}`` where it
            enters the recurrent matmul, the same at every step (variational dropout); ``None`` for none.

    Returns:
        ``(state, out [B, D])``: ``out`` is ``a_t`` under input feeding, else the top layer's ``h_t``.
    """
    layer_states, feed = state
    new_states = []
    inputs = None
    for i, (kernel, feed_kernel, rec_kernel, in_bias, rec_bias) in enumerate(weights):
        h_prev = layer_states[i][0]
        h_rec = h_prev if recurrent_masks is None else h_prev * recurrent_masks[i]
        if i == 0:
            proj = x_proj if feed_kernel is None else x_proj + ops.matmul(feed, feed_kernel)
        else:
            proj = ops.matmul(inputs, kernel) + in_bias
        if kind == "lstm":
            h, c = lstm_step(proj + ops.matmul(h_rec, rec_kernel), layer_states[i][1])
            new_states.append((h, c))
        else:
            h = gru_step(proj, h_prev, rec_kernel, rec_bias, h_rec)
            new_states.append((h,))
        inputs = h
    out = inputs
    if feed_attend is not None:
        out = feed = feed_attend(inputs[:, None, :])[:, 0]
    return (tuple(new_states), feed), out
