"""A trained autoregressive model's forward pass in NumPy alone: no Keras, no JAX, no compilation.

For a few words at a time the compiled search pays XLA's per-step overhead (~6.5 ms for one
word's greedy search on 2 CPU cores) and, in a new process, ~2 s of importing JAX and Keras and
loading compiled programs. The same arithmetic in NumPy at batch 1 is a few small matrix
products per step. :class:`NumpySeq2Seq` reads the arrays of a compact model directory
(``weights.npz``, in :class:`biseq.model.Seq2Seq`'s weight order) and gives the same numbers as
the Keras layers (tested against them for every supported configuration):

* encoder: (bidirectional) LSTM/GRU layers over right-padded sources, Keras's state order;
* bridge: the routes of :func:`biseq.routing.plan_routes`;
* decoder: a unidirectional LSTM/GRU stack with Luong or Bahdanau attention (or none) and
  optional input feeding, one step at a time (see :class:`biseq.layers.RecurrentDecoder`).

Shapes: ``B`` batch, ``S`` source length, ``H`` encoder units, ``M`` memory size, ``D`` decoder
units, ``G`` gate width (``4D`` LSTM, ``3D`` GRU), ``V`` target vocabulary size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from biseq.config import ModelConfig
from biseq.routing import Route, directions, plan_routes, state_parts

NEG_INF = -1e9  # as biseq.layers: the attention bias at padded source positions


class UnsupportedModel(ValueError):
    """The model is not one the NumPy path computes (the Keras path decodes it)."""


def unsupported_reason(config: ModelConfig) -> str:
    """Why the NumPy path cannot run a model of ``config`` (``""``: it can)."""
    if config.resolved_objective != "autoregressive":
        return f"objective {config.resolved_objective!r} (the NumPy path runs autoregressive models)"
    if config.decoder not in ("lstm", "gru"):
        return f"decoder {config.decoder!r}"
    if config.attention not in ("none", "luong", "bahdanau"):
        return f"attention {config.attention!r}"
    return ""


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function without overflow: ``(1 + tanh(x / 2)) / 2``."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def log_softmax(x: np.ndarray) -> np.ndarray:
    """``log softmax`` over the last axis."""
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@dataclasses.dataclass(frozen=True)
class Cell:
    """One Keras ``LSTMCell``/``GRUCell``'s weights.

    ``bias`` is the input bias ``[G]``; ``recurrent_bias`` the GRU's second bias row
    (``reset_after``), ``None`` for an LSTM. ``_stacked`` makes one cell of several (the two
    directions of a layer): ``recurrent [K, D, G]``, states ``[K, B, D]``, one step for all.
    """

    lstm: bool
    kernel: np.ndarray  # [I, G]
    recurrent: np.ndarray  # [D, G]
    bias: np.ndarray  # [G]
    recurrent_bias: np.ndarray | None

    def step(self, projected: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        """One step from the input projection ``[B, G]`` (bias included): the new ``(h, c)`` or ``(h,)``."""
        h, d = state[0], self.recurrent.shape[-2]
        if self.lstm:
            z = projected + h @ self.recurrent
            gates = sigmoid(z)  # one call for i, f, o (g's share is unused): fewer small NumPy calls
            c = gates[..., d:2 * d] * state[1] + gates[..., :d] * np.tanh(z[..., 2 * d:3 * d])
            return gates[..., 3 * d:] * np.tanh(c), c
        inner = h @ self.recurrent + self.recurrent_bias
        zr = sigmoid(projected[..., :2 * d] + inner[..., :2 * d])
        z = zr[..., :d]
        candidate = np.tanh(projected[..., 2 * d:] + zr[..., d:] * inner[..., 2 * d:])
        return (z * h + (1.0 - z) * candidate,)


@dataclasses.dataclass(frozen=True)
class Encoded:
    """The encoder's outputs: ``memory [B, S, M]``, ``mask [B, S]`` bool, per layer Keras-ordered states."""

    memory: np.ndarray
    mask: np.ndarray
    states: list[list[np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Memory:
    """What attention reads, per decoding row: ``memory [N, S, M]``, ``keys [N, S, D]``, ``bias [N, S]``."""

    memory: np.ndarray
    keys: np.ndarray
    bias: np.ndarray

    def take(self, rows: np.ndarray) -> Memory:
        return Memory(self.memory[rows], self.keys[rows], self.bias[rows])


@dataclasses.dataclass(frozen=True)
class DecoderState:
    """Per decoder layer ``(h, c)`` or ``(h,)``, each ``[N, D]``; ``feed``: the last attentional vector
    (input feeding), else ``None``."""

    layers: tuple[tuple[np.ndarray, ...], ...]
    feed: np.ndarray | None

    def take(self, rows: np.ndarray) -> DecoderState:
        return DecoderState(tuple(tuple(x[rows] for x in layer) for layer in self.layers),
                            None if self.feed is None else self.feed[rows])


class NumpySeq2Seq:
    """The forward pass of a :class:`biseq.model.Seq2Seq` from its weight arrays.

    Args:
        config: the model's configuration (``unsupported_reason(config)`` must be empty).
        arrays: every weight array in the Keras model's weight order (``weights.npz``).

    Raises:
        UnsupportedModel: a configuration this path does not compute.
        ValueError: the arrays do not fit ``config`` (count or shapes).
    """

    objective = "autoregressive"

    def __init__(self, *, config: ModelConfig, arrays: Sequence[np.ndarray]) -> None:
        reason = unsupported_reason(config)
        if reason:
            raise UnsupportedModel(reason)
        self.config = c = config
        take = _Reader(arrays)
        self.routes: list[Route] = plan_routes(
            bridge=c.resolved_bridge, encoder_kind=c.encoder, encoder_units=c.encoder_units,
            encoder_layers=c.encoder_layers, decoder_kind=c.decoder, decoder_units=c.decoder_units,
            decoder_layers=c.decoder_layers)
        self.bridge = {r: take.dense(len(r.sources) * c.encoder_units, c.decoder_units)
                       for r in self.routes if r.op == "dense"}
        self.source_embedding = take.array(None, c.embedding_dim)
        lstm_encoder, width = c.encoder.endswith("lstm"), c.embedding_dim
        self.encoder: list[list[Cell]] = []
        for _ in range(c.encoder_layers):
            self.encoder.append([take.cell(lstm_encoder, width, c.encoder_units) for _ in range(directions(c.encoder))])
            width = c.encoder_units * directions(c.encoder)
        self.encoder_stacked = [_stacked(layer) for layer in self.encoder]
        self.memory_dim, units = width, c.decoder_units
        self.target_embedding = take.array(None, c.embedding_dim)
        self.feed_size = units if c.attention != "none" and c.input_feeding else 0
        lstm_decoder = c.decoder == "lstm"
        self.decoder = [take.cell(lstm_decoder, (c.embedding_dim + self.feed_size) if i == 0 else units, units)
                        for i in range(c.decoder_layers)]
        if c.attention != "none":
            self.key_projection = take.array(width, units)
            if c.attention == "bahdanau":
                self.query_projection, self.energy = take.array(units, units), take.array(units, 1)[:, 0]
            self.attention_output = take.array(width + units, units)
        self.output_kernel, self.output_bias = take.dense(units, None)
        take.finish()
        first = self.decoder[0]
        # the embedding's share of layer 1's input projection, for every token at once: [V, G]
        self.token_projection = self.target_embedding @ first.kernel[: c.embedding_dim] + first.bias
        self.feed_kernel = first.kernel[c.embedding_dim:] if self.feed_size else None
        self.vocab_size = len(self.output_bias)

    # --- encoder and bridge ------------------------------------------------------------------
    def encode(self, source: np.ndarray) -> Encoded:
        """``source [B, S]`` int ids (0 right padding) -> :class:`Encoded`."""
        mask = source != 0
        x = self.source_embedding[source]
        states = []
        for layer, both in zip(self.encoder, self.encoder_stacked, strict=True):
            outputs, final = _run_layer(layer, both, x, mask)
            x = np.concatenate(outputs, axis=-1) if len(outputs) > 1 else outputs[0]
            states.append([t for direction in final for t in direction])
        return Encoded(memory=x, mask=mask, states=states)

    def initial_state(self, encoded: Encoded, rows: np.ndarray | None = None) -> tuple[DecoderState, Memory | None]:
        """The decoder's first state and attention memory for each of ``rows`` (indices into the batch; all)."""
        c = self.config
        parts = state_parts(c.encoder)
        per_layer = [[dict(zip(parts, flat[d * len(parts):(d + 1) * len(parts)], strict=True))
                      for d in range(directions(c.encoder))] for flat in encoded.states]
        batch = encoded.memory.shape[0]
        made: dict[tuple[int, str], np.ndarray] = {}
        for r in self.routes:
            tensors = [per_layer[layer][d][part] for layer, d, part in r.sources]
            made[r.layer, r.part] = r.apply(
                tensors, zeros=lambda size: np.zeros((batch, size), np.float32),
                concatenate=lambda ts: np.concatenate(ts, axis=-1),
                dense=lambda route, x: np.tanh(x @ self.bridge[route][0] + self.bridge[route][1]))
        if rows is None:
            rows = np.arange(batch)
        layers = tuple(tuple(made[i, p][rows] for p in state_parts(c.decoder)) for i in range(c.decoder_layers))
        feed = np.zeros((len(rows), self.feed_size), np.float32) if self.feed_size else None
        memory = None
        if c.attention != "none":  # keys once per source, then one copy per row
            keys = _project(encoded.memory, self.key_projection)
            memory = Memory(encoded.memory[rows], keys[rows],
                            np.where(encoded.mask[rows], 0.0, NEG_INF).astype(np.float32))
        return DecoderState(layers, feed), memory

    # --- decoder ------------------------------------------------------------------------------
    def step(self, tokens: np.ndarray, state: DecoderState, memory: Memory | None
             ) -> tuple[np.ndarray, DecoderState]:
        """One decoding step: previous tokens ``[N]`` -> ``(logits [N, V], state)``."""
        projected = self.token_projection[tokens]
        if self.feed_kernel is not None:
            projected = projected + state.feed @ self.feed_kernel
        new, inputs = [], None
        for i, (cell, layer_state) in enumerate(zip(self.decoder, state.layers, strict=True)):
            if i:
                projected = inputs @ cell.kernel + cell.bias
            layer_state = cell.step(projected, layer_state)
            new.append(layer_state)
            inputs = layer_state[0]
        out, feed = inputs, state.feed
        if memory is not None:
            out = self._attend(inputs, memory)
            if self.feed_size:
                feed = out
        return out @ self.output_kernel + self.output_bias, DecoderState(tuple(new), feed)

    def _attend(self, hidden: np.ndarray, memory: Memory) -> np.ndarray:
        """``hidden [N, D]`` -> attentional vector ``tanh(W_c [context; hidden])`` ``[N, D]``."""
        if self.config.attention == "luong":
            scores = (memory.keys @ hidden[:, :, None])[:, :, 0]
        else:
            scores = np.tanh(memory.keys + (hidden @ self.query_projection)[:, None, :]) @ self.energy
        scores = scores + memory.bias
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights /= weights.sum(axis=-1, keepdims=True)
        context = (weights[:, None, :] @ memory.memory)[:, 0]
        return np.tanh(np.concatenate([context, hidden], axis=-1) @ self.attention_output)


def _project(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``x [B, S, I] @ kernel [I, O]`` as one 2-D matrix product (NumPy loops over B otherwise)."""
    return (x.reshape(-1, x.shape[-1]) @ kernel).reshape(*x.shape[:-1], kernel.shape[1])


def _stacked(cells: list[Cell]) -> Cell:
    """The cells of one layer's directions as one cell over a leading direction axis (kernels unused)."""
    bias = None if cells[0].lstm else np.stack([c.recurrent_bias for c in cells])[:, None, :]
    return Cell(cells[0].lstm, cells[0].kernel, np.stack([c.recurrent for c in cells]), cells[0].bias, bias)


def _run_layer(cells: list[Cell], both: Cell, x: np.ndarray, mask: np.ndarray
               ) -> tuple[list[np.ndarray], list[tuple[np.ndarray, ...]]]:
    """One (bidirectional) recurrent layer over ``x [B, S, I]``: per direction outputs ``[B, S, D]``
    (0 at padding) and final state, both directions in one loop.

    As Keras with a mask: the backward direction reads each row's real tokens in reverse (here
    by reversing them in place, so right padding stays at the end for both directions), and
    padded steps carry the state through, so every final state is that after a real token.
    """
    batch, length, _ = x.shape
    lengths = mask.sum(axis=1)[:, None]
    position = np.arange(length)[None, :]
    rows = np.arange(batch)[:, None]
    reverse = np.where(position < lengths, lengths - 1 - position, position)  # its own inverse
    inputs = [x, x[rows, reverse]][: len(cells)]
    projected = np.stack([_project(xd, cell.kernel) + cell.bias for xd, cell in zip(inputs, cells, strict=True)])
    units = both.recurrent.shape[-2]
    state = tuple(np.zeros((len(cells), batch, units), np.float32) for _ in range(2 if both.lstm else 1))
    outputs = np.zeros((len(cells), batch, length, units), np.float32)
    padded = not mask.all()
    for t in range(length):
        new = both.step(projected[:, :, t], state)
        if padded:
            keep = mask[None, :, t, None]
            new = tuple(np.where(keep, n, s) for n, s in zip(new, state, strict=True))
            outputs[:, :, t] = np.where(keep, new[0], 0.0)
        else:
            outputs[:, :, t] = new[0]
        state = new
    found = [outputs[0]] + ([outputs[1][rows, reverse]] if len(cells) == 2 else [])
    return found, [tuple(s[d] for s in state) for d in range(len(cells))]


class _Reader:
    """Hands out the weight arrays in order, checking each shape (``None``: any size on that axis)."""

    def __init__(self, arrays: Sequence[np.ndarray]) -> None:
        self.arrays: Iterator[np.ndarray] = iter(arrays)
        self.count, self.total = 0, len(arrays)

    def array(self, *shape: int | None) -> np.ndarray:
        value = next(self.arrays, None)
        if value is None:
            raise ValueError(f"{self.total} weight arrays, but the configuration needs more")
        if value.ndim != len(shape) or any(s is not None and s != v for s, v in zip(shape, value.shape, strict=True)):
            raise ValueError(f"weight array {self.count} has shape {value.shape}, the configuration expects "
                             f"{tuple('any' if s is None else s for s in shape)}")
        self.count += 1
        return np.ascontiguousarray(value, dtype=np.float32)

    def dense(self, inputs: int, outputs: int | None) -> tuple[np.ndarray, np.ndarray]:
        kernel = self.array(inputs, outputs)
        return kernel, self.array(kernel.shape[1])

    def cell(self, lstm: bool, inputs: int, units: int) -> Cell:
        gates = (4 if lstm else 3) * units
        kernel, recurrent = self.array(inputs, gates), self.array(units, gates)
        if lstm:
            return Cell(True, kernel, recurrent, self.array(gates), None)
        bias = self.array(2, gates)
        return Cell(False, kernel, recurrent, bias[0], bias[1])

    def finish(self) -> None:
        if self.count != self.total:
            raise ValueError(f"{self.total} weight arrays, but the configuration has {self.count}")
