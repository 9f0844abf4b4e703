"""A model directory on disk: its files, atomic writes, and the checks made when it is read.

A saved model directory holds ``model.keras`` (weights and architecture), ``vocab.json``
and ``config.json``: everything needed to load it in a new process. Its compact form holds
``weights.npz`` (every weight array, by index in the model's weight order) instead of
``model.keras``; the network is then rebuilt from ``config.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np

from biseq.config import Config
from biseq.model import Seq2Seq  # also registers the biseq layers that load_keras_file rebuilds
from biseq.model_files import (  # noqa: F401 - re-exported: they lived here
    CONFIG_FILE,
    KERAS_MEMBERS,
    MODEL_FILE,
    VOCAB_FILE,
    WEIGHTS_FILE,
    ModelDirError,
    atomic_write_text,
    cache_weights,
    read_config,
    read_vocabularies,
    replace_shared,
    vocab_json,
)
from biseq.vocabulary import Vocabulary


def _fsync(path: str) -> None:
    """Flush ``path`` to the disk: what ``os.replace`` makes visible is complete even after a power cut."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_save_model(model: keras.Model, path: Path) -> None:
    """``model.save`` to a temporary ``.keras`` file, then ``os.replace`` onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".keras")
    os.close(fd)
    try:
        model.save(tmp)
        _fsync(tmp)
        replace_shared(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_keras_file(path: Path) -> keras.Model:
    """A biseq ``.keras`` file, loaded in Keras's safe mode; nothing in it is executed.

    Refused with :class:`ModelDirError` naming the file: not a zip archive, members other than
    Keras's own three (a pickle, say), a model that is not a biseq ``Seq2Seq``, a layer Keras's
    safe mode refuses (``Lambda``), or weights that do not fit the architecture.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            config = json.loads(archive.read("config.json")) if "config.json" in names else None
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelDirError(f"{path}: not a readable .keras file ({err}); truncated or not a model") from None
    foreign = [n for n in names if n not in KERAS_MEMBERS and not n.startswith("assets/")]
    if foreign or config is None:
        what = f"unexpected member(s) {foreign}" if foreign else "no config.json inside"
        raise ModelDirError(f"{path}: refused, {what}: a biseq model file holds only {', '.join(KERAS_MEMBERS)}")
    if not isinstance(config, dict) or config.get("class_name") != "Seq2Seq":
        found = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise ModelDirError(f"{path}: refused, it holds a {found!r} model, not a biseq Seq2Seq")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - any failure to rebuild a foreign or damaged file is the file's
        raise ModelDirError(f"{path}: cannot be loaded ({type(err).__name__}: {str(err)[:300]})") from None


def write_model_dir(directory: Path, *, config: Config, source_vocab: Vocabulary, target_vocab: Vocabulary,
                    model: keras.Model, weights_dtype: str = "") -> None:
    """Write ``model.keras``, ``vocab.json`` and ``config.json``, each atomically.

    ``weights_dtype="float16"`` writes ``weights.npz`` (every weight array in half precision,
    compressed; half the size, for a model shipped in a package) instead of ``model.keras``:
    :func:`read_weights` reads the arrays back into a network rebuilt from ``config.json``.
    """
    atomic_write_text(directory / VOCAB_FILE, vocab_json(source_vocab, target_vocab))
    atomic_write_text(directory / CONFIG_FILE, json.dumps(config.to_dict(), indent=2))
    if not weights_dtype:
        atomic_save_model(model, directory / MODEL_FILE)
        return
    arrays = {f"w{i:03d}": np.asarray(w.numpy(), dtype=weights_dtype) for i, w in enumerate(model.weights)}
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".weights.", suffix=".npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        replace_shared(tmp, directory / WEIGHTS_FILE)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class ModelDirContents(NamedTuple):
    """What :func:`read_model_dir` found."""

    config: Config
    source_vocab: Vocabulary
    target_vocab: Vocabulary
    model: Seq2Seq | None  # None: the compact form; build the network from config, then read_weights(WEIGHTS_FILE)


def read_model_dir(directory: Path) -> ModelDirContents:
    """Read a directory written by :func:`write_model_dir` (or by ``biseq train``).

    Raises:
        ModelDirError: naming the missing, unreadable or mismatched file.
    """
    weights = MODEL_FILE if (directory / MODEL_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file() \
        else WEIGHTS_FILE
    missing = [n for n in (weights, VOCAB_FILE, CONFIG_FILE) if not (directory / n).is_file()]
    if missing:
        raise ModelDirError(
            f"{directory} is not a biseq model directory: missing {', '.join(missing)} "
            "(a model directory is what 'biseq train --out DIR' writes)."
        )
    config = read_config(directory)
    source_vocab, target_vocab = read_vocabularies(directory / VOCAB_FILE)
    if weights == WEIGHTS_FILE:
        return ModelDirContents(config, source_vocab, target_vocab, None)
    model = load_keras_file(directory / MODEL_FILE)
    _check_sizes(model, source_vocab, target_vocab, directory)
    cache_weights(directory, lambda: [w.numpy() for w in model.weights])  # the NumPy path reads this copy
    return ModelDirContents(config, source_vocab, target_vocab, model)


def _check_sizes(model: keras.Model, source_vocab: Vocabulary, target_vocab: Vocabulary, directory: Path) -> None:
    """The network's vocabulary sizes are those of ``vocab.json``."""
    sizes = (model.source_vocab_size, model.target_vocab_size)
    if sizes != (len(source_vocab), len(target_vocab)):
        raise ModelDirError(f"{directory / VOCAB_FILE}: {len(source_vocab)} source / {len(target_vocab)} "
                            f"target symbols, but {directory / MODEL_FILE} was trained with {sizes[0]} / "
                            f"{sizes[1]}: the files come from different runs")


def read_weights(model: keras.Model, path: Path) -> None:
    """Set ``model``'s weights from a :data:`WEIGHTS_FILE` (``np.load`` without pickle)."""
    for w, v in zip(model.weights, _weight_arrays(model, path), strict=True):
        w.assign(v)


def _weight_arrays(model: keras.Model, path: Path) -> list[np.ndarray]:
    """The arrays of a :data:`WEIGHTS_FILE`, checked against ``model.weights`` (count, shapes), in their dtypes."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            values = [arrays[f"w{i:03d}"] for i in range(len(arrays.files))]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise ModelDirError(f"{path}: not a readable weights file ({err})") from None
    weights = model.weights
    if len(values) != len(weights):
        raise ModelDirError(f"{path}: {len(values)} weight arrays, but config.json's model has {len(weights)}")
    for i, (w, v) in enumerate(zip(weights, values, strict=True)):
        if tuple(w.shape) != v.shape:
            raise ModelDirError(f"{path}: array {i} ({w.path}) has shape {v.shape}, the model expects "
                                f"{tuple(w.shape)}")
    return [v.astype(w.dtype) for w, v in zip(weights, values, strict=True)]


def build_from_weights(build: Callable[[], keras.Model], path: Path) -> keras.Model:
    """``build()``'s network with the arrays of a :data:`WEIGHTS_FILE`, its random initialisers never run.

    Keras runs a weight's initialiser when the weight is created: one compiled random op per
    shape, ~2 s for the bundled model on 2 cores, for values that are then overwritten. Created in
    ``keras.StatelessScope(initialize_variables=False)`` the weights wait uninitialised; each is
    given its saved array as its initialiser, and leaving a new top-level scope initialises them.
    Falls back to :func:`read_weights` after a normal build if Keras's variables differ from that.
    """
    with keras.StatelessScope(initialize_variables=False):
        model = build()
    weights = model.weights
    if not all(getattr(w, "_value", 0) is None and hasattr(w, "_initializer") for w in weights):
        model = build()  # this Keras initialised them anyway (or names things differently): the plain way
        read_weights(model, path)
        return model
    for w, value in zip(weights, _weight_arrays(model, path), strict=True):
        w._initializer = lambda shape, dtype=None, value=value: value  # noqa: SLF001 (Keras's deferred init)
    with keras.StatelessScope():  # on exit, Keras initialises every variable still waiting
        pass
    return model
