"""Epoch checkpoints: kept newest-N, averaged exactly."""

import numpy as np
import pytest
from keras import ops

from biseq.checkpoints import CheckpointError, average_checkpoints, epoch_checkpoints, save_epoch_weights
from tests.test_search_and_learning import small_model


def _weights(model):
    return [ops.convert_to_numpy(w) for w in model.trainable_weights]


def test_keeps_the_newest_and_averages_exactly(tmp_path):
    model = small_model().model
    rng = np.random.default_rng(0)
    saved = []
    for epoch in range(1, 5):
        for w in model.trainable_weights:
            w.assign(rng.normal(size=w.shape).astype("float32"))
        saved.append(_weights(model))
        save_epoch_weights(model, run=tmp_path, epoch=epoch, keep=3)
    paths = epoch_checkpoints(tmp_path)
    assert [p.name for p in paths] == ["epoch-002.weights.h5", "epoch-003.weights.h5", "epoch-004.weights.h5"]
    assert not [p for p in (tmp_path / "epochs").iterdir() if p.name.startswith(".tmp")]
    average_checkpoints(model, paths[-2:])
    for got, a, b in zip(_weights(model), saved[2], saved[3], strict=True):
        np.testing.assert_allclose(got, (a + b) / 2, rtol=1e-6, atol=1e-6)


def test_incompatible_checkpoint_is_named(tmp_path):
    small = small_model()
    save_epoch_weights(small.model, run=tmp_path, epoch=1, keep=1)
    other = small_model(encoder_units=12, decoder_units=24).model
    with pytest.raises(CheckpointError, match="epoch-001.weights.h5: cannot load into this model"):
        average_checkpoints(other, epoch_checkpoints(tmp_path))
