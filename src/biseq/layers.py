"""Encoder, attention and decoder layers, written with ``keras.ops`` only.

Shapes: ``B`` batch, ``S`` source length, ``T`` target length, ``E`` embedding
size, ``H`` encoder units per direction, ``M`` memory size (``H`` x directions),
``D`` decoder units, ``V`` target vocabulary size.
"""

from __future__ import annotations

import keras
from keras import ops

from biseq.cell_steps import cell_weights, gru_step, stack_step
from biseq.cell_steps import lstm_step as lstm_step  # re-exported: it lived here
from biseq.recurrence import lstm_scan
from biseq.routing import directions, state_parts

NEG_INF = -1e9


def _check_fused(fused: bool, recurrent_dropout: float) -> None:
    if fused and recurrent_dropout:
        raise ValueError("fused=True does not implement recurrent dropout; use fused=False with "
                         f"recurrent_dropout={recurrent_dropout}.")


def _rnn_class(kind: str) -> type:
    return keras.layers.LSTM if kind.endswith("lstm") else keras.layers.GRU


def _cells(layer) -> list:
    """The Keras cells of an ``LSTM``/``GRU`` layer or of both halves of a ``Bidirectional`` one."""
    if isinstance(layer, keras.layers.Bidirectional):
        return [layer.forward_layer.cell, layer.backward_layer.cell]
    return [layer.cell]


def run_directions(layer, x, mask, initial_states=None):
    """Run a Keras (``Bidirectional``) LSTM/GRU layer's weights as one loop over time for all directions.

    The input projections are hoisted out of the loop; the backward direction reads each row's
    real tokens in reverse (as Keras does with a mask), and LSTMs run in :func:`biseq.recurrence.lstm_scan`
    (a custom-gradient loop on JAX). Gives the numbers of calling ``layer`` itself (tested).

    Args:
        layer: a built Keras ``LSTM``, ``GRU`` or ``Bidirectional`` of one of them.
        x: ``[B, S, I]`` inputs.
        mask: ``[B, S]`` bool, True at real tokens (right padding).
        initial_states: Keras-ordered flat list (``[fwd_h, fwd_c, bwd_h, bwd_c]``), each ``[B, H]``;
            default zeros.

    Returns:
        ``(outputs [B, S, H x directions], final states as a Keras-ordered flat list)``.
    """
    cells = _cells(layer)
    lstm = isinstance(cells[0], keras.layers.LSTMCell)
    units = cells[0].units
    # Time-major; the backward direction reads the sequence flipped, so (right) padding comes first
    # and only carries the initial state through: it starts at each row's last real token.
    step_mask = ops.transpose(ops.cast(mask, x.dtype), (1, 0))[:, :, None]  # [S, B, 1]
    masks = [step_mask, ops.flip(step_mask, axis=0)][:len(cells)]
    parts = 2 if lstm else 1
    if initial_states is None:
        zeros = ops.zeros((ops.shape(x)[0], units), dtype=x.dtype)
        initial_states = [zeros] * (parts * len(cells))
    init = [tuple(initial_states[d * parts:(d + 1) * parts]) for d in range(len(cells))]
    projections = []
    x_time = ops.transpose(x, (1, 0, 2))
    for d, cell in enumerate(cells):
        bias = ops.convert_to_tensor(cell.bias)
        xd = x_time if d == 0 else ops.flip(x_time, axis=0)
        projections.append(ops.matmul(xd, cell.kernel) + (bias if lstm else bias[0]))  # [S, B, G]
    if lstm:
        stacked, h, c = lstm_scan(ops.stack(projections, axis=1), ops.stack(masks, axis=1),
                                  ops.stack([s[0] for s in init]), ops.stack([s[1] for s in init]),
                                  ops.stack([ops.convert_to_tensor(cell.recurrent_kernel) for cell in cells]))
        outputs = [stacked[:, d] for d in range(len(cells))]
        final = [(h[d], c[d]) for d in range(len(cells))]
    else:
        weights = [(ops.convert_to_tensor(cell.recurrent_kernel), ops.convert_to_tensor(cell.bias)[1])
                   for cell in cells]

        def body(carry, inputs):
            ms, projs = inputs[:len(cells)], inputs[len(cells):]
            new, outs = [], []
            for (rec, rec_bias), m, proj, (prev,) in zip(weights, ms, projs, carry, strict=True):
                h = gru_step(proj, prev, rec, rec_bias)
                new.append((m * h + (1 - m) * prev,))
                outs.append(m * h)
            return tuple(new), tuple(outs)

        final, outputs = ops.scan(body, tuple(init), (*masks, *projections))
        outputs = list(outputs)
    if len(outputs) == 2:
        outputs[1] = ops.flip(outputs[1], axis=0)
    outputs = [ops.transpose(o, (1, 0, 2)) for o in outputs]
    joined = ops.concatenate(outputs, axis=-1) if len(outputs) == 2 else outputs[0]
    return joined, [t for state in final for t in state]


@keras.saving.register_keras_serializable(package="biseq")
class RecurrentEncoder(keras.layers.Layer):
    """A stack of (bidirectional) LSTM or GRU layers returning outputs and final states.

    Call arguments:
        x: ``[B, S, E]`` embedded source.
        source_mask: ``[B, S]`` bool, True at real tokens.

    Returns:
        ``(outputs [B, S, M], states)``: ``states`` holds one Keras-ordered list
        per layer (bidirectional LSTM: ``[fwd_h, fwd_c, bwd_h, bwd_c]``), each ``[B, H]``;
        outputs at padded positions are 0.

    The weights are those of Keras ``LSTM``/``GRU`` layers (wrapped in ``Bidirectional``).
    ``fused=False`` (the default) calls the Keras layers themselves. With ``fused=True`` each
    layer runs through :func:`run_directions` (both directions in one loop, input projections
    hoisted, LSTM gradients from a custom-VJP loop on JAX). Both give the same numbers and
    gradients (tested). On JAX/CPU (2 cores) the fused path cut the summed XLA op time of a
    training step by 12 % but not the wall time (60 ms per step either way at batch 64: XLA runs
    Keras's two per-direction loops concurrently on the two cores), so it is not the default.
    """

    def __init__(self, *, kind: str, units: int, num_layers: int = 1, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, fused: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.kind, self.units, self.num_layers, self.dropout_rate = kind, units, num_layers, dropout
        self.recurrent_dropout = recurrent_dropout
        self.fused = fused
        _check_fused(fused, recurrent_dropout)
        rnn = _rnn_class(kind)
        self.rnns = []
        for i in range(num_layers):
            layer = rnn(units, return_sequences=True, return_state=True, recurrent_dropout=recurrent_dropout,
                        name=f"{kind}_{i + 1}")
            if directions(kind) == 2:
                layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{i + 1}")
            self.rnns.append(layer)
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape) -> None:
        width = input_shape[-1]
        for layer in self.rnns:
            layer.build((None, None, width))
            width = self.units * directions(self.kind)
        self.built = True

    def call(self, x, source_mask=None, training=False):
        if source_mask is None:
            source_mask = ops.ones(ops.shape(x)[:2], dtype="bool")
        states = []
        for i, layer in enumerate(self.rnns):
            if i:
                x = self.dropout(x, training=training)
            if self.fused:
                x, layer_states = run_directions(layer, x, source_mask)
            else:
                result = layer(x, mask=source_mask, training=training)
                x, layer_states = result[0], list(result[1:])
                x = x * ops.cast(source_mask, x.dtype)[:, :, None]
            states.append(layer_states)
        return x, states

    def compute_output_spec(self, x, source_mask=None, training=False):
        batch, length = x.shape[0], x.shape[1]
        width = self.units * directions(self.kind)
        spec = keras.KerasTensor((batch, self.units))
        per_layer = [spec] * (len(state_parts(self.kind)) * directions(self.kind))
        return keras.KerasTensor((batch, length, width)), [list(per_layer) for _ in self.rnns]

    def get_config(self) -> dict:
        return {**super().get_config(), "kind": self.kind, "units": self.units,
                "num_layers": self.num_layers, "dropout": self.dropout_rate,
                "recurrent_dropout": self.recurrent_dropout, "fused": self.fused}


@keras.saving.register_keras_serializable(package="biseq")
class Attention(keras.layers.Layer):
    """Luong ``general`` (``score = q W k``) or Bahdanau (``score = v tanh(W_k k + W_q q)``).

    ``prepare(memory)`` projects the memory once; ``call`` scores one query.
    """

    def __init__(self, *, kind: str, units: int, **kwargs) -> None:
        super().__init__(**kwargs)
        if kind not in ("luong", "bahdanau"):
            raise ValueError(f"Attention kind must be 'luong' or 'bahdanau'. Received: {kind!r}")
        self.kind, self.units = kind, units
        self.key_projection = keras.layers.Dense(units, use_bias=False, name="key_projection")
        if kind == "bahdanau":
            self.query_projection = keras.layers.Dense(units, use_bias=False, name="query_projection")
            self.energy = keras.layers.Dense(1, use_bias=False, name="energy")

    def build(self, memory_dim: int) -> None:
        self.key_projection.build((None, memory_dim))
        if self.kind == "bahdanau":
            self.query_projection.build((None, self.units))
            self.energy.build((None, self.units))
        self.built = True

    def prepare(self, memory):
        """``[B, S, M]`` memory -> ``[B, S, D]`` keys."""
        return self.key_projection(memory)

    def call(self, query, memory, keys, mask_bias):
        """Attend.

        Args:
            query: ``[B, T, D]`` decoder states (``T`` may be 1).
            memory: ``[B, S, M]`` encoder outputs.
            keys: ``[B, S, D]`` from ``prepare``.
            mask_bias: ``[B, S]``, 0 at real tokens and a large negative number at padding.

        Returns:
            ``(context [B, T, M], weights [B, T, S])``.
        """
        if query.shape[1] == 1:  # one decoding step: broadcasting beats a batched matmul here
            q = query[:, 0]
            if self.kind == "luong":
                scores = ops.sum(keys * q[:, None, :], axis=-1)
            else:
                scores = ops.squeeze(self.energy(ops.tanh(keys + self.query_projection(q)[:, None, :])), -1)
            weights = ops.softmax(scores + mask_bias, axis=-1)
            context = ops.sum(weights[:, :, None] * memory, axis=1)
            return context[:, None, :], weights[:, None, :]
        if self.kind == "luong":
            scores = ops.einsum("btd,bsd->bts", query, keys)
        else:
            hidden = ops.tanh(keys[:, None, :, :] + self.query_projection(query)[:, :, None, :])
            scores = ops.squeeze(self.energy(hidden), axis=-1)
        weights = ops.softmax(scores + mask_bias[:, None, :], axis=-1)
        context = ops.einsum("bts,bsm->btm", weights, memory)
        return context, weights

    def get_config(self) -> dict:
        return {**super().get_config(), "kind": self.kind, "units": self.units}


@keras.saving.register_keras_serializable(package="biseq")
class RecurrentDecoder(keras.layers.Layer):
    """Unidirectional autoregressive LSTM/GRU decoder with optional attention and input feeding.

    Weights live in Keras ``LSTMCell``/``GRUCell`` objects; the time loop is one
    ``keras.ops.scan`` with the embedding's input projection and the output
    layer hoisted out of it. One step:

    1. layer 1 input = ``[embed(y_{t-1}); a_{t-1}]`` (``a`` the attentional vector, input feeding)
    2. update each recurrent layer; the top one gives ``h_t``
    3. attention: ``c_t = attend(h_t, memory)``; ``a_t = tanh(W_c [c_t; h_t])``
    4. logits = ``W_o a_t`` (``W_o h_t`` without attention)

    Without input feeding step 1 reads ``embed(y_{t-1})`` only, and in teacher
    forcing step 3 runs for all ``t`` at once after the loop (faster).

    The state is ``(layer states, a_{t-1})``; layer states are ``(h, c)`` (LSTM)
    or ``(h,)`` (GRU), each ``[B, D]``.
    """

    def __init__(self, *, kind: str, units: int, num_layers: int, vocab_size: int, embedding_dim: int,
                 memory_dim: int, attention: str = "luong", input_feeding: bool = True, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, embedding: keras.layers.Embedding | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if directions(kind) != 1:
            raise ValueError(f"RecurrentDecoder is unidirectional. Received kind={kind!r}")
        self.recurrent_dropout = recurrent_dropout
        self.seed_generator = keras.random.SeedGenerator() if recurrent_dropout else None
        self.kind, self.units, self.num_layers = kind, units, num_layers
        self.vocab_size, self.embedding_dim, self.memory_dim = vocab_size, embedding_dim, memory_dim
        self.attention_kind, self.input_feeding, self.dropout_rate = attention, input_feeding, dropout
        self.embedding = embedding or keras.layers.Embedding(vocab_size, embedding_dim, name="target_embedding")
        cell = keras.layers.LSTMCell if kind == "lstm" else keras.layers.GRUCell
        self.cells = [cell(units, name=f"{kind}_cell_{i + 1}") for i in range(num_layers)]
        self.attention = None
        if attention != "none":
            self.attention = Attention(kind=attention, units=units, name="attention")
            self.attention_output = keras.layers.Dense(units, activation="tanh", use_bias=False,
                                                       name="attention_output")
        self.output_projection = keras.layers.Dense(vocab_size, name="output_projection")
        self.dropout = keras.layers.Dropout(dropout)

    @property
    def feed_size(self) -> int:
        return self.units if self.attention is not None and self.input_feeding else 0

    def build(self, input_shape=None) -> None:
        if not self.embedding.built:
            self.embedding.build((None, None))
        for i, cell in enumerate(self.cells):
            cell.build((None, self.embedding_dim + self.feed_size if i == 0 else self.units))
        if self.attention is not None:
            self.attention.build(self.memory_dim)
            self.attention_output.build((None, self.memory_dim + self.units))
        self.output_projection.build((None, self.units))
        self.built = True

    # --- pieces shared by teacher forcing and step-wise decoding -------------------------
    def _weights(self):
        """Per layer :class:`~biseq.cell_steps.CellWeights` (layer 1's kernel split under input feeding)."""
        return cell_weights(self.cells, kind=self.kind, embedding_dim=self.embedding_dim, feed_size=self.feed_size)

    def _project_inputs(self, tokens, weights, training=False):
        """``[..., ]`` token ids -> layer-1 input projection ``[..., 4D or 3D]`` (bias included)."""
        x = self.dropout(self.embedding(tokens), training=training)
        return ops.matmul(x, weights[0].kernel) + weights[0].input_bias

    def memory_bundle(self, memory, source_mask):
        """Precompute attention keys: returns ``(memory, keys, mask_bias)`` or ``()``."""
        if self.attention is None:
            return ()
        keys = self.attention.prepare(memory)
        mask_bias = (1.0 - ops.cast(source_mask, memory.dtype)) * NEG_INF
        return (memory, keys, mask_bias)

    def initial_state(self, layer_states: list[list], batch_size):
        """Decoder state from the bridge's per-layer lists."""
        feed = ops.zeros((batch_size, self.units), dtype=self.compute_dtype) if self.feed_size else ()
        return (tuple(tuple(s) for s in layer_states), feed)

    def _recur(self, state, x_proj, weights, bundle, recurrent_masks=None):
        """One time step (:func:`~biseq.cell_steps.stack_step`); returns ``(state, a_t [B, D])``."""
        feed_attend = (lambda hidden: self._attend(hidden, bundle)) if self.feed_size else None
        return stack_step(state, x_proj, weights, kind=self.kind, feed_attend=feed_attend,
                          recurrent_masks=recurrent_masks)

    def _attend(self, hidden, bundle):
        """``hidden [B, T, D]`` -> attentional vectors ``tanh(W_c [context; hidden])`` ``[B, T, D]``."""
        memory, keys, mask_bias = bundle
        context, _ = self.attention(hidden, memory, keys, mask_bias)
        return self.attention_output(ops.concatenate([context, hidden], axis=-1))

    def step(self, tokens, state, bundle):
        """One decoding step.

        Args:
            tokens: ``[B]`` previous token ids.
            state: decoder state (see the class docstring).
            bundle: from ``memory_bundle``.

        Returns:
            ``(logits [B, V], state)``.
        """
        weights = self._weights()
        state, out = self._recur(state, self._project_inputs(tokens, weights), weights, bundle)
        if self.attention is not None and not self.feed_size:
            out = self._attend(out[:, None, :], bundle)[:, 0]
        return self.output_projection(out), state

    def call(self, decoder_input, state, bundle, training=False):
        """Teacher forcing over ``decoder_input [B, T]``; returns logits ``[B, T, V]``."""
        weights = self._weights()
        x_proj = self._project_inputs(decoder_input, weights, training=training)  # [B, T, G]
        x_proj = ops.transpose(x_proj, (1, 0, 2))
        masks = None
        if training and self.recurrent_dropout:
            ones = ops.ones((ops.shape(decoder_input)[0], self.units), dtype=x_proj.dtype)
            masks = [keras.random.dropout(ones, self.recurrent_dropout, seed=self.seed_generator)
                     for _ in self.cells]

        def body(carry, x_t):
            return self._recur(carry, x_t, weights, bundle, masks)

        _, outputs = ops.scan(body, state, x_proj)
        outputs = ops.transpose(outputs, (1, 0, 2))
        if self.attention is not None and not self.feed_size:
            outputs = self._attend(outputs, bundle)  # all steps at once, outside the loop
        return self.output_projection(self.dropout(outputs, training=training))

    def get_config(self) -> dict:
        return {**super().get_config(), "kind": self.kind, "units": self.units, "num_layers": self.num_layers,
                "vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim,
                "memory_dim": self.memory_dim, "attention": self.attention_kind,
                "input_feeding": self.input_feeding, "dropout": self.dropout_rate,
                "recurrent_dropout": self.recurrent_dropout}


@keras.saving.register_keras_serializable(package="biseq")
class BidirectionalDecoder(keras.layers.Layer):
    """The seed's decoder: ``Bidirectional(LSTM(return_sequences=True))(x, initial_state=states)``.

    Trained with teacher forcing its backward half reads the target tokens
    after position ``t``; it cannot generate left to right (see ``biseq.search``).

    With ``attention`` (``luong`` or ``bahdanau``) the seed's layers stay as they are and their
    outputs then attend to the encoder outputs, as Mask-Predict's decoder attends to the source:
    1. ``x = Bidirectional(...)(embedded input, initial_state=states)`` ``[B, T, 2H]``;
    2. ``context = attention(x, memory)`` ``[B, T, M]``;
    3. ``x = tanh(W [x; context])`` ``[B, T, 2H]``, then the output projection.

    Call arguments:
        decoder_input: ``[B, T]`` token ids.
        layer_states: one flat Keras-ordered list per layer (``[fwd_h, fwd_c, bwd_h, bwd_c]``).
        memory: ``[B, S, M]`` encoder outputs (used with attention).
        memory_mask: ``[B, S]`` bool, True at real source tokens (used with attention).

    Returns:
        logits ``[B, T, V]``.
    """

    def __init__(self, *, kind: str, units: int, num_layers: int, vocab_size: int, embedding_dim: int,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, fused: bool = False, attention: str = "none",
                 memory_dim: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.kind, self.units, self.num_layers, self.fused = kind, units, num_layers, fused
        self.attention_kind, self.memory_dim = attention, memory_dim
        if attention != "none":
            if memory_dim < 1:
                raise ValueError(f"attention={attention!r} needs the encoder's output size. Received: {memory_dim}")
            self.attention = Attention(kind=attention, units=2 * units, name="attention")
            self.attention_output = keras.layers.Dense(2 * units, activation="tanh", name="attention_output")
        self.recurrent_dropout = recurrent_dropout
        _check_fused(fused, recurrent_dropout)
        self.vocab_size, self.embedding_dim, self.dropout_rate = vocab_size, embedding_dim, dropout
        self.embedding = self.input_layer()
        rnn = _rnn_class(kind)
        self.rnns = [
            keras.layers.Bidirectional(rnn(units, return_sequences=True, recurrent_dropout=recurrent_dropout,
                                           name=f"{kind[2:]}_{i + 1}"),
                                       name=f"decoder_bidirectional_{i + 1}")
            for i in range(num_layers)
        ]
        self.dropout = keras.layers.Dropout(dropout)
        self.output_projection = keras.layers.Dense(vocab_size, name="output_projection")

    def input_layer(self) -> keras.layers.Layer:
        """What turns the decoder's input into ``[B, T, E]`` vectors: the target embedding."""
        return keras.layers.Embedding(self.vocab_size, self.embedding_dim, name="target_embedding")

    def build_input(self) -> None:
        self.embedding.build((None, None))

    def build(self, input_shape=None) -> None:
        self.build_input()
        width = self.embedding_dim
        for layer in self.rnns:
            layer.build((None, None, width))
            width = 2 * self.units
        if self.attention_kind != "none":
            self.attention.build(self.memory_dim)
            self.attention_output.build((None, 2 * self.units + self.memory_dim))
        self.output_projection.build((None, 2 * self.units))
        self.built = True

    def call(self, decoder_input, layer_states, memory=None, memory_mask=None, training=False):
        x = self.dropout(self.embedding(decoder_input), training=training)
        return self.read(x, ops.not_equal(decoder_input, 0), layer_states, memory, memory_mask, training=training)

    def read(self, x, mask, layer_states, memory=None, memory_mask=None, training=False):
        """The seed's layers, then attention, over ``x [B, T, E]`` with ``mask [B, T]``: logits ``[B, T, V]``."""
        for layer, states in zip(self.rnns, layer_states, strict=True):
            if self.fused:
                x = run_directions(layer, x, mask, list(states))[0]
            else:
                x = layer(x, initial_state=list(states), mask=mask, training=training)
        if self.attention_kind != "none":
            x = ops.where(mask[:, :, None], x, 0.0)  # as the layer leaves padding, without its Keras mask
            bias = ops.where(memory_mask, 0.0, -1e9)
            context, _ = self.attention(x, memory, self.attention.prepare(memory), bias)
            x = self.attention_output(ops.concatenate([x, context], axis=-1))
        return self.output_projection(self.dropout(x, training=training))

    def get_config(self) -> dict:
        return {**super().get_config(), "kind": self.kind, "units": self.units, "num_layers": self.num_layers,
                "vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim, "dropout": self.dropout_rate,
                "recurrent_dropout": self.recurrent_dropout, "fused": self.fused, "attention": self.attention_kind,
                "memory_dim": self.memory_dim}


@keras.saving.register_keras_serializable(package="biseq")
class TwinDecoder(keras.layers.Layer):
    """Objective ``twin``: a left-to-right and a right-to-left decoder sharing the target embedding.

    The forward decoder starts from the encoder's forward states and reads
    ``<s> y_1 .. y_n``; the backward one starts from the encoder's backward states
    and reads ``<s> y_n .. y_1``. Each has its own recurrent layers, attention and
    output layer. Both can generate; at inference their n-best lists are rescored
    by both (see ``biseq.search``).

    Call arguments:
        forward_input, backward_input: ``[B, T]`` token ids.
        forward_state, backward_state: decoder states (see :class:`RecurrentDecoder`).
        bundle: from ``memory_bundle``.

    Returns:
        ``(forward logits [B, T, V], backward logits [B, T, V])``.
    """

    def __init__(self, *, kind: str, units: int, num_layers: int, vocab_size: int, embedding_dim: int,
                 memory_dim: int, attention: str = "luong", input_feeding: bool = True, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.settings = dict(kind=kind, units=units, num_layers=num_layers, vocab_size=vocab_size,
                             embedding_dim=embedding_dim, memory_dim=memory_dim, attention=attention,
                             input_feeding=input_feeding, dropout=dropout, recurrent_dropout=recurrent_dropout)
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="target_embedding")
        one = dict(self.settings, kind=kind.removeprefix("bi"), embedding=self.embedding)
        self.left_to_right = RecurrentDecoder(**one, name="left_to_right_decoder")
        self.right_to_left = RecurrentDecoder(**one, name="right_to_left_decoder")
        self.vocab_size = vocab_size

    def build(self, input_shape=None) -> None:
        self.embedding.build((None, None))
        self.left_to_right.build()
        self.right_to_left.build()
        self.built = True

    def direction(self, index: int) -> RecurrentDecoder:
        """0: the left-to-right decoder, 1: the right-to-left decoder."""
        return (self.left_to_right, self.right_to_left)[index]

    def memory_bundle(self, memory, source_mask):
        return (self.left_to_right.memory_bundle(memory, source_mask),
                self.right_to_left.memory_bundle(memory, source_mask))

    def call(self, forward_input, backward_input, forward_state, backward_state, bundles, training=False):
        return (self.left_to_right(forward_input, forward_state, bundles[0], training=training),
                self.right_to_left(backward_input, backward_state, bundles[1], training=training))

    def get_config(self) -> dict:
        return {**super().get_config(), **self.settings}
