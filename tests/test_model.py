"""The seed's model, save/load of every model kind, and reproducible training."""

import keras
import numpy as np
import pytest
from keras import ops

import biseq
from biseq.config import ModelConfig
from biseq.model import Seq2Seq
from biseq.training import MaskedCrossEntropy


def test_seed_model_is_the_answer_verbatim():
    model = biseq.seed_model(total_words=64, emb_dimension=64, lstm_units=256)
    assert model.count_params() == 1_355_840  # as measured for the answer's model in Keras 3
    assert [layer.name for layer in model.layers] == ["Enc_Input", "Dec_Input", "Enc_Embedding", "Dec_Embedding",
                                                      "Enc_Bi1", "Dec_Bi1", "Dec_Softmax"]
    probs = model.predict_on_batch([np.ones((2, 5), "int32"), np.ones((2, 3), "int32")])
    assert probs.shape == (2, 3, 64)
    np.testing.assert_allclose(np.asarray(probs).sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(encoder="bigru", decoder="gru", attention="bahdanau", encoder_layers=2, decoder_layers=2),
    dict(decoder="bilstm", decoder_units=8),
    dict(decoder="bilstm", decoder_units=8, objective="masked", attention="none"),
    dict(bridge="dense", decoder_units=12),
])
def test_keras_file_round_trip(tmp_path, kwargs):
    config = ModelConfig(**{"embedding_dim": 6, "encoder_units": 8, "decoder_units": 16, **kwargs})
    model = Seq2Seq(config=config, source_vocab_size=11, target_vocab_size=13)
    source, target = np.array([[4, 5, 6], [7, 0, 0]], "int32"), np.array([[1, 5, 6], [1, 7, 0]], "int32")
    inputs = (source, target, target) if model.objective == "twin" else (source, target)
    before = keras.tree.map_structure(ops.convert_to_numpy, model(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.model_config == config
    after = keras.tree.map_structure(ops.convert_to_numpy, loaded(inputs))
    keras.tree.map_structure(lambda a, b: np.testing.assert_array_equal(a, b), before, after)


def test_training_is_reproducible():
    def run():
        keras.utils.set_random_seed(11)
        model = Seq2Seq(config=ModelConfig(embedding_dim=6, encoder_units=8, decoder_units=16),
                        source_vocab_size=11, target_vocab_size=13)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss=MaskedCrossEntropy())
        rng = np.random.default_rng(0)
        x = (rng.integers(4, 11, (16, 5)).astype("int32"), rng.integers(4, 13, (16, 4)).astype("int32"))
        y = rng.integers(4, 13, (16, 4)).astype("int32")
        history = model.fit(x, y, sample_weight=np.ones((16, 4), "float32"), epochs=3, batch_size=8, verbose=0)
        return history.history["loss"], [ops.convert_to_numpy(w) for w in model.weights]

    (loss_a, weights_a), (loss_b, weights_b) = run(), run()
    assert loss_a == loss_b
    for a, b in zip(weights_a, weights_b, strict=True):
        np.testing.assert_array_equal(a, b)


def test_model_dir_names_are_re_exported_and_a_bare_directory_is_refused(tmp_path):
    import biseq.model_dir
    import biseq.transducer
    from biseq.transducer import ModelDirError, Transducer

    for name in ("ModelDirError", "atomic_write_text", "atomic_save_model", "load_keras_file", "MODEL_FILE",
                 "VOCAB_FILE", "CONFIG_FILE", "WEIGHTS_FILE", "KERAS_MEMBERS"):
        assert getattr(biseq.transducer, name) is getattr(biseq.model_dir, name)
    with pytest.raises(ModelDirError, match="missing model.keras, vocab.json, config.json"):
        Transducer.load(tmp_path)
