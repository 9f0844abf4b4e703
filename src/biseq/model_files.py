"""The files of a model directory that need neither Keras nor JAX: names, atomic text writes,
``config.json`` and ``vocab.json`` read with errors that name the file, and the NumPy copy of a
``model.keras``'s weights kept in the cache (written when the Keras path reads the file).

:mod:`biseq.model_dir` adds the network (``model.keras`` / ``weights.npz``) on top; the NumPy
decoding path (:mod:`biseq.numpy_decoding`) reads a compact directory with these alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from biseq.atomic import atomic_write_text, replace_shared, share  # noqa: F401 - re-exported
from biseq.compile_cache import cache_dir
from biseq.config import Config
from biseq.subwords import SubwordError, Subwords
from biseq.vocabulary import Vocabulary

MODEL_FILE, VOCAB_FILE, CONFIG_FILE = "model.keras", "vocab.json", "config.json"
WEIGHTS_FILE = "weights.npz"  # compact form (save(weights_dtype="float16")): the arrays only, no code, no pickle
KERAS_MEMBERS = ("config.json", "metadata.json", "model.weights.h5")


class ModelDirError(ValueError):
    """A model directory is missing or incomplete."""


def vocab_json(source_vocab: Vocabulary, target_vocab: Vocabulary) -> str:
    """The text of ``vocab.json``: both symbol lists, and each side's subword model (base64) if it has one."""
    vocab: dict = {"source": source_vocab.to_list(), "target": target_vocab.to_list()}
    for side, v in (("source", source_vocab), ("target", target_vocab)):
        if v.subwords is not None:
            vocab[f"{side}_subwords"] = v.subwords.to_text()
    return json.dumps(vocab, ensure_ascii=False, indent=1)


def read_vocabularies(path: Path) -> tuple[Vocabulary, Vocabulary]:
    """The source and target vocabularies of a ``vocab.json``; ModelDirError naming the file when malformed."""
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelDirError(f"{path}: not valid JSON ({err})") from None
    if not (isinstance(vocab, dict) and all(isinstance(vocab.get(k), list) and all(isinstance(t, str)
                                            for t in vocab[k]) for k in ("source", "target"))):
        raise ModelDirError(f"{path}: expected {{\"source\": [symbols], \"target\": [symbols]}}")
    found = []
    for side in ("source", "target"):
        subwords = None
        if f"{side}_subwords" in vocab:
            try:
                subwords = Subwords.from_text(str(vocab[f"{side}_subwords"]))
            except SubwordError as err:
                raise ModelDirError(f"{path}: {side}_subwords: {err}") from None
        try:
            found.append(Vocabulary(vocab[side], subwords=subwords))
        except ValueError as err:
            raise ModelDirError(f"{path}: {side}: {err}") from None
    return found[0], found[1]


def read_config(directory: Path) -> Config:
    """The :class:`~biseq.config.Config` of a model directory's ``config.json``.

    Raises:
        ModelDirError: the file is not valid JSON (a ``ConfigError`` names an unknown or wrong key).
    """
    try:
        return Config.from_dict(json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8")),
                                where=str(directory / CONFIG_FILE))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelDirError(f"{directory}: config.json is not valid JSON ({err})") from None


def _cached_copy(directory: Path) -> Path | None:
    """Where the NumPy copy of ``directory``'s ``model.keras`` is cached (named by its path, size and
    modification time, so a replaced file gets a new copy); ``None`` without a ``model.keras``."""
    keras_file = directory / MODEL_FILE
    try:
        stat = keras_file.stat()
    except OSError:
        return None
    key = hashlib.sha256(f"{keras_file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:32]
    return cache_dir() / "weights" / f"{key}.npz"


def weights_file(directory: Path) -> Path | None:
    """The weights the NumPy path reads for a model directory: its ``weights.npz``, else the cached
    copy of its ``model.keras`` (:func:`cache_weights`), else ``None``."""
    if (directory / WEIGHTS_FILE).is_file():
        return directory / WEIGHTS_FILE
    copy = _cached_copy(directory)
    return copy if copy is not None and copy.is_file() else None


def cache_weights(directory: Path, arrays: Callable[[], Sequence[np.ndarray]]) -> None:
    """Cache ``arrays()`` (the model's weights, in order; called only when the copy is missing) for
    ``directory``'s ``model.keras``, written atomically; a cache that cannot be written is passed
    over (the compiled path still works)."""
    copy = _cached_copy(directory)
    if copy is None or copy.is_file():
        return
    try:
        copy.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=copy.parent, prefix=".weights.", suffix=".npz")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez(file, **{f"w{i:03d}": np.asarray(a) for i, a in enumerate(arrays())})
        os.replace(tmp, copy)
    except OSError:
        pass
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
