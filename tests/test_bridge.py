"""State routing, checked numerically with constant states and constant weights."""

import keras
import numpy as np
import pytest
from keras import ops

from biseq.bridge import Bridge, BridgeError
from biseq.config import ModelConfig
from biseq.model import Seq2Seq

B, H = 2, 3


def const_states(kind, layers):
    """Encoder states filled with 1, 2, 3, ... in Keras order, per layer."""
    n = {"lstm": 2, "gru": 1, "bilstm": 4, "bigru": 2}[kind]
    value = iter(range(1, 100))
    return [[np.full((B, H), float(next(value)), "float32") for _ in range(n)] for _ in range(layers)]


def run_bridge(bridge, enc, dec, *, units, layers=1, dec_layers=None):
    layer = Bridge(bridge=bridge, encoder_kind=enc, encoder_units=H, encoder_layers=layers, decoder_kind=dec,
                   decoder_units=units, decoder_layers=dec_layers or layers)
    layer.build()
    out = layer(const_states(enc, layers))
    return layer, [[ops.convert_to_numpy(t) for t in states] for states in out]


def rows(*values):
    return np.concatenate([np.full((B, H), float(v), "float32") for v in values], axis=-1)


@pytest.mark.parametrize("layers", [1, 2])
def test_concat_bilstm_to_lstm(layers):
    _, out = run_bridge("concat", "bilstm", "lstm", units=2 * H, layers=layers)
    for i, (h, c) in enumerate(out):  # layer i's states are 4i+1 .. 4i+4 = fwd_h, fwd_c, bwd_h, bwd_c
        np.testing.assert_array_equal(h, rows(4 * i + 1, 4 * i + 3))
        np.testing.assert_array_equal(c, rows(4 * i + 2, 4 * i + 4))


def test_sum_forward_zero_bilstm_to_lstm():
    _, [[h, c]] = run_bridge("sum", "bilstm", "lstm", units=H)
    np.testing.assert_array_equal(h, rows(4)) and np.testing.assert_array_equal(c, rows(6))
    _, [[h, c]] = run_bridge("forward", "bilstm", "lstm", units=H)
    np.testing.assert_array_equal(h, rows(1))
    np.testing.assert_array_equal(c, rows(2))
    _, [[h, c]] = run_bridge("zero", "bilstm", "lstm", units=5)
    assert h.shape == (B, 5) and not h.any() and not c.any()


@pytest.mark.parametrize("layers", [1, 2])
def test_direct_bilstm_to_bilstm_is_the_seed_routing(layers):
    _, out = run_bridge("direct", "bilstm", "bilstm", units=H, layers=layers)
    for i, states in enumerate(out):
        assert [s[0, 0] for s in states] == [4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 4]


def test_gru_routes_one_state_per_direction():
    _, [[h]] = run_bridge("concat", "bigru", "gru", units=2 * H)
    np.testing.assert_array_equal(h, rows(1, 2))
    _, [[fh, bh]] = run_bridge("direct", "bigru", "bigru", units=H)
    assert (fh[0, 0], bh[0, 0]) == (1, 2)
    _, [[h]] = run_bridge("concat", "bilstm", "gru", units=2 * H)  # GRU decoder reads h only
    np.testing.assert_array_equal(h, rows(1, 3))
    _, [[h, c]] = run_bridge("concat", "bigru", "lstm", units=2 * H)  # LSTM decoder after GRU: c = 0
    np.testing.assert_array_equal(h, rows(1, 2))
    assert not c.any()


def test_uni_encoder_direct():
    _, [[h, c]] = run_bridge("direct", "lstm", "lstm", units=H)
    assert (h[0, 0], c[0, 0]) == (1, 2)
    _, [[h, c]] = run_bridge("concat", "lstm", "lstm", units=H)
    assert (h[0, 0], c[0, 0]) == (1, 2)


def test_dense_bridge_with_constant_weights():
    layer, _ = run_bridge("dense", "bilstm", "lstm", units=4)
    for dense in layer.projections.values():
        dense.kernel.assign(np.full(dense.kernel.shape, 0.01, "float32"))
        dense.bias.assign(np.full(dense.bias.shape, 0.5, "float32"))
    [[h, c]] = [[ops.convert_to_numpy(t) for t in s] for s in layer(const_states("bilstm", 1))]
    np.testing.assert_allclose(h, np.tanh(0.01 * H * (1 + 3) + 0.5) * np.ones((B, 4)), rtol=1e-6)
    np.testing.assert_allclose(c, np.tanh(0.01 * H * (2 + 4) + 0.5) * np.ones((B, 4)), rtol=1e-6)
    # bidirectional decoder: one projection per direction from the same direction
    layer, _ = run_bridge("dense", "bilstm", "bilstm", units=4)
    assert len(layer.projections) == 4
    # different depths: every decoder layer reads the top encoder layer
    layer, out = run_bridge("dense", "bilstm", "lstm", units=4, layers=2, dec_layers=3)
    assert len(out) == 3 and all(r.sources[0][0] == 1 for r in layer.routes if r.op == "dense")


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(bridge="concat", encoder_kind="bilstm", decoder_kind="lstm", decoder_units=5),
     r"bridge='concat' gives each decoder state the shape \(batch, 6\) = \[forward h \(batch, 3\); backward h "
     r"\(batch, 3\)\], but the decoder state is \(batch, 5\)"),
    (dict(bridge="sum", encoder_kind="bilstm", decoder_kind="lstm", decoder_units=6),
     r"shape \(batch, 3\) = forward h \+ backward h"),
    (dict(bridge="concat", encoder_kind="bilstm", decoder_kind="bilstm", decoder_units=3),
     r"bridge='concat' makes one state from both encoder directions.*Use bridge='direct'"),
    (dict(bridge="direct", encoder_kind="bilstm", decoder_kind="lstm", decoder_units=3),
     r"encoder='bilstm' has 2 direction\(s\) and decoder='lstm' 1"),
    (dict(bridge="direct", encoder_kind="lstm", decoder_kind="bilstm", decoder_units=3),
     r"Use a bidirectional encoder"),
    (dict(bridge="concat", encoder_kind="bilstm", decoder_kind="lstm", decoder_units=6, decoder_layers=2),
     r"the encoder has 1 layer\(s\) and the decoder 2"),
])
def test_impossible_routing_names_the_shapes(kwargs, message):
    settings = dict(encoder_units=H, encoder_layers=1, decoder_layers=1) | kwargs
    with pytest.raises(BridgeError, match=message):
        Bridge(**settings)


def test_config_raises_the_routing_error():
    with pytest.raises(BridgeError, match=r"decoder_units=256"):
        ModelConfig(encoder_units=128, decoder_units=300)


def test_model_bridges_the_real_encoder_states():
    """The decoder's initial state is [forward final state; backward final state] of the Keras encoder."""
    model = Seq2Seq(config=ModelConfig(encoder_units=4, decoder_units=8, embedding_dim=5, attention="none"),
                    source_vocab_size=9, target_vocab_size=9)
    source = np.array([[4, 5, 6, 0], [7, 8, 0, 0]], "int32")
    encoded = model.encode(source)
    [[h, c]] = model.initial_decoder_states(encoded)
    bi = model.encoder.rnns[0]
    x = model.source_embedding(source)
    mask = source != 0
    _, fh, fc = bi.forward_layer(x, mask=mask)
    _, bh, bc = bi.backward_layer(x, mask=mask)
    np.testing.assert_allclose(ops.convert_to_numpy(h), np.concatenate([fh, bh], -1), atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(c), np.concatenate([fc, bc], -1), atol=1e-6)
    # padding does not change the states: the short row alone gives the same result
    [[h1, _]] = model.initial_decoder_states(model.encode(source[1:, :2]))
    np.testing.assert_allclose(ops.convert_to_numpy(h1)[0], ops.convert_to_numpy(h)[1], atol=1e-6)


def test_bilstm_decoder_matches_seed_semantics():
    """Decoder ``bilstm``: forward LSTM from (fwd_h, fwd_c), backward LSTM from (bwd_h, bwd_c)."""
    model = Seq2Seq(config=ModelConfig(encoder_units=4, decoder="bilstm", decoder_units=4, embedding_dim=5,
                                       attention="none", objective="seed"), source_vocab_size=9, target_vocab_size=9)
    source = np.array([[4, 5, 6], [7, 8, 4]], "int32")
    target_in = np.array([[1, 4, 5, 6], [1, 7, 8, 4]], "int32")
    logits = ops.convert_to_numpy(model((source, target_in)))
    [states] = model.initial_decoder_states(model.encode(source))
    dec = model.decoder
    x = dec.embedding(target_in)
    bi = dec.rnns[0]
    fwd = keras.layers.RNN(bi.forward_layer.cell, return_sequences=True)(x, initial_state=states[0:2])
    bwd = keras.layers.RNN(bi.backward_layer.cell, return_sequences=True, go_backwards=True)(
        x, initial_state=states[2:4])
    merged = np.concatenate([ops.convert_to_numpy(fwd), ops.convert_to_numpy(bwd)[:, ::-1]], -1)
    np.testing.assert_allclose(logits, ops.convert_to_numpy(dec.output_projection(merged)), atol=1e-5)
