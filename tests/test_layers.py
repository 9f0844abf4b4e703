"""The decoder's hoisted time loop matches the generic Keras recurrent layers numerically."""

import keras
import numpy as np
import pytest
from keras import ops

from biseq.layers import RecurrentDecoder


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_decoder_loop_equals_keras_rnn(kind, layers):
    keras.utils.set_random_seed(0)
    dec = RecurrentDecoder(kind=kind, units=6, num_layers=layers, vocab_size=11, embedding_dim=5, memory_dim=4,
                           attention="none")
    dec.build()
    for cell in dec.cells:  # non-zero biases so bias handling is checked too
        cell.bias.assign(np.random.default_rng(1).normal(size=cell.bias.shape).astype("float32"))
    tokens = np.array([[1, 4, 5, 6, 7], [1, 8, 9, 0, 0]], "int32")
    init = [[np.random.default_rng(i).normal(size=(2, 6)).astype("float32")
             for _ in range(2 if kind == "lstm" else 1)] for i in range(layers)]
    logits = dec(tokens, dec.initial_state(init, 2), ())
    x = dec.embedding(tokens)
    for cell, states in zip(dec.cells, init, strict=True):
        x = keras.layers.RNN(cell, return_sequences=True)(x, initial_state=states)
    np.testing.assert_allclose(ops.convert_to_numpy(logits), ops.convert_to_numpy(dec.output_projection(x)),
                               atol=1e-5)


@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
@pytest.mark.parametrize("input_feeding", [True, False])
def test_teacher_forcing_equals_stepping(attention, input_feeding):
    """The scan over a whole target and ``step`` called per token give the same logits."""
    keras.utils.set_random_seed(0)
    dec = RecurrentDecoder(kind="lstm", units=6, num_layers=2, vocab_size=11, embedding_dim=5, memory_dim=4,
                           attention=attention, input_feeding=input_feeding)
    dec.build()
    rng = np.random.default_rng(0)
    memory = rng.normal(size=(2, 3, 4)).astype("float32")
    mask = np.array([[True, True, True], [True, True, False]])
    bundle = dec.memory_bundle(memory, mask)
    init = [[rng.normal(size=(2, 6)).astype("float32") for _ in range(2)] for _ in range(2)]
    tokens = np.array([[1, 4, 5, 6], [1, 8, 9, 10]], "int32")
    full = ops.convert_to_numpy(dec(tokens, dec.initial_state(init, 2), bundle))
    state = dec.initial_state(init, 2)
    for t in range(tokens.shape[1]):
        logits, state = dec.step(tokens[:, t], state, bundle)
        np.testing.assert_allclose(ops.convert_to_numpy(logits), full[:, t], atol=1e-5)
    # padding in the memory is ignored: changing a padded memory position changes nothing
    memory2 = memory.copy()
    memory2[1, 2] = 100.0
    full2 = ops.convert_to_numpy(dec(tokens, dec.initial_state(init, 2), dec.memory_bundle(memory2, mask)))
    np.testing.assert_allclose(full2[1], full[1], atol=1e-5)


def test_decoder_weights_keep_their_order_paths_and_split():
    """Saved weights (``weights.npz`` reads them by index) need this order; the step helpers own no weights."""
    from biseq.cell_steps import cell_weights

    dec = RecurrentDecoder(kind="lstm", units=6, num_layers=2, vocab_size=11, embedding_dim=5, memory_dim=4,
                           name="decoder")
    dec.build()
    assert [(w.path, tuple(w.shape)) for w in dec.weights] == [
        ("decoder/target_embedding/embeddings", (11, 5)), ("decoder/lstm_cell_1/kernel", (11, 24)),
        ("decoder/lstm_cell_1/recurrent_kernel", (6, 24)), ("decoder/lstm_cell_1/bias", (24,)),
        ("decoder/lstm_cell_2/kernel", (6, 24)), ("decoder/lstm_cell_2/recurrent_kernel", (6, 24)),
        ("decoder/lstm_cell_2/bias", (24,)), ("decoder/attention/key_projection/kernel", (4, 6)),
        ("decoder/attention_output/kernel", (10, 6)), ("decoder/output_projection/kernel", (6, 11)),
        ("decoder/output_projection/bias", (11,))]
    first, second = cell_weights(dec.cells, kind="lstm", embedding_dim=5, feed_size=dec.feed_size)
    assert tuple(first.kernel.shape) == (5, 24) and tuple(first.feed_kernel.shape) == (6, 24)
    assert second.feed_kernel is None and first.recurrent_bias is None
    gru = RecurrentDecoder(kind="gru", units=6, num_layers=1, vocab_size=11, embedding_dim=5, memory_dim=4,
                           attention="none")
    gru.build()
    (only,) = cell_weights(gru.cells, kind="gru", embedding_dim=5, feed_size=gru.feed_size)
    assert only.feed_kernel is None and tuple(only.input_bias.shape) == tuple(only.recurrent_bias.shape) == (18,)


@pytest.mark.parametrize("kind", ["bilstm", "lstm", "bigru", "gru"])
def test_fused_encoder_equals_keras_layers(kind):
    """The fused scan (both directions, hoisted projections) gives the numbers of Keras's own layers."""
    from biseq.layers import RecurrentEncoder

    keras.utils.set_random_seed(0)
    fused = RecurrentEncoder(kind=kind, units=5, num_layers=2, fused=True)
    fused.build((None, None, 4))
    generic = RecurrentEncoder(kind=kind, units=5, num_layers=2, fused=False)
    generic.build((None, None, 4))
    rng = np.random.default_rng(0)
    for variable, value in zip(generic.weights, fused.weights, strict=True):
        variable.assign(ops.convert_to_numpy(value) + rng.normal(size=variable.shape).astype("float32") * 0.3)
    for variable, value in zip(fused.weights, generic.weights, strict=True):
        variable.assign(value)
    x = rng.normal(size=(3, 6, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], bool)
    out_f, states_f = fused(x, source_mask=mask)
    out_g, states_g = generic(x, source_mask=mask)
    np.testing.assert_allclose(ops.convert_to_numpy(out_f), ops.convert_to_numpy(out_g), atol=1e-5)
    for layer_f, layer_g in zip(states_f, states_g, strict=True):
        assert len(layer_f) == len(layer_g)
        for a, b in zip(layer_f, layer_g, strict=True):
            np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b), atol=1e-5)


def _twin_layers(cls, **kwargs):
    """Two copies of a layer with the same random (non-initial) weights: one fused, one generic."""
    keras.utils.set_random_seed(0)
    fused, generic = cls(fused=True, **kwargs), cls(fused=False, **kwargs)
    rng = np.random.default_rng(0)
    for layer in (fused, generic):
        layer.build((None, None, 4))
    for a, b in zip(fused.weights, generic.weights, strict=True):
        value = rng.normal(size=a.shape).astype("float32") * 0.4
        a.assign(value)
        b.assign(value)
    return fused, generic


@pytest.mark.parametrize("kind", ["bilstm", "bigru"])
def test_fused_seed_decoder_equals_keras_bidirectional(kind):
    """The seed decoder's fused loop: same outputs at real positions and same gradients as Keras's layer."""
    from biseq.layers import BidirectionalDecoder

    fused, generic = _twin_layers(BidirectionalDecoder, kind=kind, units=5, num_layers=2, vocab_size=9,
                                  embedding_dim=4)
    rng = np.random.default_rng(1)
    tokens = np.array([[1, 4, 5, 6, 7, 2], [1, 8, 3, 2, 0, 0], [1, 2, 0, 0, 0, 0]], "int32")
    parts = 4 if kind == "bilstm" else 2
    states = [[rng.normal(size=(3, 5)).astype("float32") for _ in range(parts)] for _ in range(2)]
    real = (tokens != 0)[:, :, None]
    got = ops.convert_to_numpy(fused(tokens, states)) * real
    want = ops.convert_to_numpy(generic(tokens, states)) * real
    np.testing.assert_allclose(got, want, atol=1e-5)
    if keras.backend.backend() == "jax":
        import jax

        def loss(layer):
            frozen = [v.value for v in layer.non_trainable_variables]

            def f(values, initial):
                return jax.numpy.sum(jax.numpy.sin(layer.stateless_call(values, frozen, tokens, initial)[0]) * real)
            return jax.grad(f, argnums=(0, 1))([v.value for v in layer.trainable_variables], states)

        for a, b in zip(jax.tree.leaves(loss(fused)), jax.tree.leaves(loss(generic)), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4)


def test_recurrent_dropout_is_training_only_and_trains():
    """Variational dropout on h_{t-1}: off at inference (equal to the same weights without it), on in training."""
    from biseq.config import ConfigError, ModelConfig
    from tests.test_search_and_learning import small_model

    keras.utils.set_random_seed(0)
    plain = small_model(dropout=0.0).model  # no other dropout: only the recurrent one can change outputs
    dropped = small_model(dropout=0.0, recurrent_dropout=0.5).model
    for a, b in zip(dropped.trainable_weights, plain.trainable_weights, strict=True):
        a.assign(b)
    source = np.array([[4, 5, 6, 7], [8, 9, 4, 0]], "int32")
    decoder_input = np.array([[1, 5, 6, 7, 8], [1, 9, 8, 0, 0]], "int32")
    want = ops.convert_to_numpy(plain((source, decoder_input)))
    np.testing.assert_allclose(ops.convert_to_numpy(dropped((source, decoder_input))), want, atol=1e-6)
    first = ops.convert_to_numpy(dropped((source, decoder_input), training=True))
    second = ops.convert_to_numpy(dropped((source, decoder_input), training=True))
    assert np.abs(first - want).max() > 1e-3 and np.abs(first - second).max() > 1e-3
    dropped.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    losses = [dropped.train_on_batch((source, decoder_input), decoder_input) for _ in range(3)]
    assert np.isfinite(losses).all()
    with pytest.raises(ConfigError, match=r"model.recurrent_dropout must be in \[0, 1\)"):
        ModelConfig(recurrent_dropout=1.0)
    from biseq.layers import RecurrentEncoder

    with pytest.raises(ValueError, match="fused=True does not implement recurrent dropout"):
        RecurrentEncoder(kind="bilstm", units=4, fused=True, recurrent_dropout=0.2)
