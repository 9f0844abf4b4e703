"""Per-epoch weight files and checkpoint averaging.

With ``train.keep_checkpoints = N`` the trainer writes ``epochs/epoch-NNN.weights.h5``
after each epoch (atomically) and keeps the newest ``N``. :func:`average_checkpoints`
averages the trainable weights of several such files into one model: a cheap
ensemble that usually decodes better than any single epoch.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from biseq.atomic import replace_shared

EPOCHS_DIR = "epochs"
_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.weights\.h5$")


class CheckpointError(Exception):
    """Missing or incompatible epoch checkpoints."""


def epoch_path(run: Path, epoch: int) -> Path:
    return run / EPOCHS_DIR / f"epoch-{epoch:03d}.weights.h5"


def epoch_checkpoints(run: Path) -> list[Path]:
    """The run's epoch weight files, oldest first."""
    folder = Path(run) / EPOCHS_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _EPOCH_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def save_epoch_weights(model: keras.Model, *, run: Path, epoch: int, keep: int) -> Path:
    """Write ``model``'s weights for ``epoch`` atomically; delete all but the newest ``keep`` files."""
    path = epoch_path(Path(run), epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".weights.h5")
    os.close(fd)
    try:
        model.save_weights(tmp, overwrite=True)
        replace_shared(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    for old in epoch_checkpoints(Path(run))[:-keep]:
        old.unlink()
    return path


def average_checkpoints(model: keras.Model, paths: Sequence[Path]) -> None:
    """Set ``model``'s trainable weights to the mean over ``paths`` (weight files of the same model).

    Non-trainable state (e.g. random seeds) is taken from the last file.
    """
    if not paths:
        raise CheckpointError("No epoch checkpoints to average.")
    total = None
    for path in paths:
        try:
            model.load_weights(path)
        except (ValueError, OSError) as error:
            raise CheckpointError(f"{path}: cannot load into this model: {error}") from None
        values = [np.asarray(keras.ops.convert_to_numpy(w), dtype=np.float64) for w in model.trainable_weights]
        total = values if total is None else [t + v for t, v in zip(total, values, strict=True)]
    for variable, summed in zip(model.trainable_weights, total, strict=True):
        variable.assign((summed / len(paths)).astype(variable.dtype))


def seed_states(model: keras.Model) -> list[list[int]]:
    """The state of every random seed generator of ``model`` (dropout masks), in the model's variable order.

    Keras saves weights and optimizer state in a ``.keras`` file but not these: a resumed run restores
    them with :func:`restore_seed_states` so its dropout masks continue where the killed run stopped.
    """
    return [np.asarray(keras.ops.convert_to_numpy(v)).tolist() for v in _seed_variables(model)]


def restore_seed_states(model: keras.Model, states: Sequence[Sequence[int]]) -> None:
    """Set ``model``'s seed generator states to ``states`` (from :func:`seed_states` of the same architecture)."""
    variables = _seed_variables(model)
    if len(variables) != len(states):
        raise CheckpointError(f"the run's state holds {len(states)} random seed states, the model has "
                              f"{len(variables)}: the checkpoint and state.json come from different models")
    for variable, value in zip(variables, states, strict=True):
        variable.assign(np.asarray(value, dtype=variable.dtype))


def _seed_variables(model: keras.Model) -> list:
    return [v for v in model.variables if v.path.rsplit("/", 1)[-1] == "seed_generator_state"]


def weights_fingerprint(model: keras.Model) -> str:
    """sha256 over every weight array of ``model`` (float32), by variable path in sorted order.

    Two models with the same architecture and the same values have the same fingerprint,
    however they were saved (``model.keras`` or float32 arrays in ``weights.npz``).
    """
    digest = hashlib.sha256()
    for variable in sorted(model.weights, key=lambda v: v.path):
        array = np.ascontiguousarray(keras.ops.convert_to_numpy(variable))
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        digest.update(f"{variable.path}|{array.dtype}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
