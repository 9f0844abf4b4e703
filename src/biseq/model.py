"""The encoder-decoder model built from a :class:`~biseq.config.ModelConfig`, and the seed's model.

Flow: source ids ``[B, S]`` -> source embedding ``[B, S, E]`` -> encoder
(outputs ``[B, S, M]``, final states per layer) -> bridge (decoder initial
states) -> decoder (teacher forcing: logits ``[B, T, V]``).
"""

from __future__ import annotations

import contextlib
import dataclasses

import keras
from keras import ops

from biseq.bridge import Bridge, join_states, split_states
from biseq.config import ModelConfig
from biseq.ctc import CTCDecoder
from biseq.layers import BidirectionalDecoder, RecurrentDecoder, RecurrentEncoder, TwinDecoder
from biseq.routing import directions

LENGTH_CLASSES = 64  # objective "masked" predicts target lengths 0..63


@dataclasses.dataclass(frozen=True)
class Encoded:
    """What the decoder needs from the encoder.

    Attributes:
        memory: ``[B, S, M]`` encoder outputs.
        mask: ``[B, S]`` bool, True at real source tokens.
        states: one Keras-ordered state list per encoder layer, each ``[B, H]``.
    """

    memory: object
    mask: object
    states: list


@keras.saving.register_keras_serializable(package="biseq")
class Seq2Seq(keras.Model):
    """Bidirectional (or not) recurrent encoder-decoder with explicit state routing.

    Call arguments:
        inputs: ``(source [B, S], decoder_input [B, T])`` int ids; 0 is padding.

    Returns:
        logits ``[B, T, V]`` (teacher forcing).
    """

    def __init__(self, *, config: dict | ModelConfig, source_vocab_size: int, target_vocab_size: int,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.model_config = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
        self.source_vocab_size, self.target_vocab_size = source_vocab_size, target_vocab_size
        c = self.model_config
        self.bridge = Bridge(bridge=c.resolved_bridge, encoder_kind=c.encoder, encoder_units=c.encoder_units,
                             encoder_layers=c.encoder_layers, decoder_kind=c.decoder,
                             decoder_units=c.decoder_units, decoder_layers=c.decoder_layers, name="bridge")
        self.source_embedding = keras.layers.Embedding(source_vocab_size, c.embedding_dim,
                                                       name="source_embedding")
        self.embedding_dropout = keras.layers.Dropout(c.dropout)
        self.encoder = RecurrentEncoder(kind=c.encoder, units=c.encoder_units, num_layers=c.encoder_layers,
                                        dropout=c.dropout, recurrent_dropout=c.recurrent_dropout, name="encoder")
        self.objective = c.resolved_objective
        common = dict(kind=c.decoder, units=c.decoder_units, num_layers=c.decoder_layers,
                      vocab_size=target_vocab_size, embedding_dim=c.embedding_dim, dropout=c.dropout,
                      recurrent_dropout=c.recurrent_dropout, name="decoder")
        memory = dict(memory_dim=c.encoder_units * directions(c.encoder), attention=c.attention,
                      input_feeding=c.input_feeding)
        if self.objective == "twin":
            self.decoder = TwinDecoder(**common, **memory)
        elif self.objective == "ctc":
            self.decoder = CTCDecoder(**common, attention=c.attention, memory_dim=memory["memory_dim"],
                                      upsampling=c.upsampling)
        elif self.objective in ("masked", "seed"):
            self.decoder = BidirectionalDecoder(**common, attention=c.attention, memory_dim=memory["memory_dim"])
        else:
            self.decoder = RecurrentDecoder(**common, **memory)
        if self.objective == "masked":
            self.length_predictor = keras.layers.Dense(LENGTH_CLASSES, name="length_predictor")
        self.build_all()

    @property
    def generation_directions(self) -> tuple[int, ...]:
        """Directions that can generate token by token: ``(0,)``, ``(0, 1)`` for twin, ``()`` otherwise."""
        return {"autoregressive": (0,), "twin": (0, 1)}.get(self.objective, ())

    def step_decoder(self, direction: int = 0) -> RecurrentDecoder:
        """The unidirectional decoder that generates in ``direction`` (1: right to left, twin only)."""
        if direction not in self.generation_directions:
            raise ValueError(f"This model ({self.objective}) cannot generate in direction {direction}.")
        return self.decoder.direction(direction) if self.objective == "twin" else self.decoder

    def direction_states(self, layer_states: list[list], direction: int = 0) -> list[list]:
        """The bridge's per-layer states for one generating decoder.

        Autoregressive: unchanged. Twin: each layer's ``[fwd_h, fwd_c, bwd_h, bwd_c]`` is
        split, the left-to-right decoder takes the forward half, the right-to-left one the
        backward half, as ``Bidirectional(...)(x, initial_state=...)`` would.
        """
        if self.objective != "twin":
            return layer_states
        return [join_states(self.model_config.decoder[2:], [split_states(self.model_config.decoder, s)[direction]])
                for s in layer_states]

    def build_all(self) -> None:
        """Create every weight now, so a fresh model can load saved weights."""
        self.source_embedding.build((None, None))
        self.encoder.build((None, None, self.model_config.embedding_dim))
        self.bridge.build()
        self.decoder.build()
        if self.objective == "masked":
            self.length_predictor.build((None, self.model_config.encoder_units * directions(self.model_config.encoder)))
        self.built = True

    def predict_length(self, encoded: Encoded):
        """Objective ``masked``: target-length logits ``[B, LENGTH_CLASSES]`` from the mean encoder output."""
        mask = ops.cast(encoded.mask, encoded.memory.dtype)[:, :, None]
        pooled = ops.sum(encoded.memory * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)
        return self.length_predictor(pooled)

    def encode(self, source, training=False) -> Encoded:
        """``source [B, S]`` -> :class:`Encoded`."""
        mask = ops.not_equal(source, 0)
        x = self.embedding_dropout(self.source_embedding(source), training=training)
        memory, states = self.encoder(x, source_mask=mask, training=training)
        return Encoded(memory=memory, mask=mask, states=states)

    def initial_decoder_states(self, encoded: Encoded) -> list[list]:
        """The bridge's output: one Keras-ordered state list per decoder layer."""
        return self.bridge(encoded.states)

    def call(self, inputs, training=False):
        """Teacher forcing.

        * ctc: ``source`` (no target input) -> frame logits ``[B, S U, V]`` (:mod:`biseq.ctc`);
        * autoregressive, seed: ``(source, decoder_input)`` -> logits ``[B, T, V]``;
        * twin: ``(source, left_to_right_input, right_to_left_input)`` -> two logits ``[B, T, V]``;
        * masked: ``(source, masked_target)`` -> ``(logits [B, T, V], length logits [B, LENGTH_CLASSES])``.
        """
        if self.objective == "ctc":
            encoded = self.encode(inputs[0] if isinstance(inputs, (tuple, list)) else inputs, training=training)
            return self.decoder(encoded.memory, encoded.mask, self.initial_decoder_states(encoded), training=training)
        source = inputs[0]
        encoded = self.encode(source, training=training)
        layer_states = self.initial_decoder_states(encoded)
        if self.objective == "seed":
            return self.decoder(inputs[1], layer_states, encoded.memory, encoded.mask, training=training)
        if self.objective == "masked":
            return (self.decoder(inputs[1], layer_states, encoded.memory, encoded.mask, training=training),
                    self.predict_length(encoded))
        batch = ops.shape(source)[0]
        if self.objective == "twin":
            bundles = self.decoder.memory_bundle(encoded.memory, encoded.mask)
            states = [self.decoder.direction(d).initial_state(self.direction_states(layer_states, d), batch)
                      for d in (0, 1)]
            return self.decoder(inputs[1], inputs[2], states[0], states[1], bundles, training=training)
        bundle = self.decoder.memory_bundle(encoded.memory, encoded.mask)
        state = self.decoder.initial_state(layer_states, batch)
        return self.decoder(inputs[1], state, bundle, training=training)

    def routing(self) -> list[str]:
        """Human-readable state routing, one line per decoder state."""
        return self.bridge.describe()

    def get_config(self) -> dict:
        return {"config": self.model_config.to_dict(), "source_vocab_size": self.source_vocab_size,
                "target_vocab_size": self.target_vocab_size, "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> Seq2Seq:
        with _no_object_sharing():
            return cls(**config)


@contextlib.contextmanager
def _no_object_sharing():
    """Build sublayers outside ``keras.saving.load_model``'s object-sharing scope.

    That scope recognises objects by ``id()``: ``Bidirectional(LSTM(...))`` serializes and
    rebuilds its temporary template layer, and once a template is freed a later one can get the
    same ``id()``, so Keras hands back the earlier rebuilt layer (a backward layer came back as
    a forward one: "Forward layer and backward layer should have different `go_backwards`").
    A :class:`Seq2Seq` shares no objects, so it is built with the scope off.
    """
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # a Keras without this internal module: nothing to switch off
        yield
        return
    keys = ("shared_objects/id_to_obj_map", "shared_objects/id_to_config_map")
    saved = [global_state.get_global_attribute(k) for k in keys]
    for k in keys:
        global_state.set_global_attribute(k, None)
    try:
        yield
    finally:
        for k, v in zip(keys, saved, strict=True):
            global_state.set_global_attribute(k, v)


def seed_model(total_words: int = 1024, emb_dimension: int = 128, lstm_units: int = 256) -> keras.Model:
    """The accepted answer's model, verbatim in Keras 3 (``input_length`` removed).

    ``Embedding -> Bidirectional(LSTM(return_state=True))`` encoder whose four
    states ``[fwd_h, fwd_c, bwd_h, bwd_c]`` initialise a decoder
    ``Bidirectional(LSTM(return_sequences=True))``; the first half goes to the
    forward layer and the second half to the backward layer. Then
    ``Dense(total_words, softmax)``.

    Inputs ``[enc_in [B, S], dec_in [B, T]]``; output probabilities ``[B, T, total_words]``.
    """
    from keras.layers import LSTM, Bidirectional, Dense, Embedding, Input

    enc_in = Input(shape=(None,), name="Enc_Input")
    enc_x = Embedding(total_words, emb_dimension, name="Enc_Embedding")(enc_in)
    bi_enc_x, *bi_enc_state = Bidirectional(LSTM(lstm_units, return_state=True, name="Enc_LSTM1"),
                                            name="Enc_Bi1")(enc_x)
    dec_in = Input(shape=(None,), name="Dec_Input")
    dec_x = Embedding(total_words, emb_dimension, name="Dec_Embedding")(dec_in)
    dec_x = Bidirectional(LSTM(lstm_units, return_sequences=True, name="Dec_LSTM1"), name="Dec_Bi1")(
        dec_x, initial_state=bi_enc_state)
    output = Dense(total_words, activation="softmax", name="Dec_Softmax")(dec_x)
    return keras.Model(inputs=[enc_in, dec_in], outputs=output, name="seed_model")
