"""JAX's persistent compilation cache: one run's XLA programs reused by the next.

Every padded batch shape is one compilation of the training step (about 10 s each on an H100,
17 shapes on CMUdict) and every decoding shape one of a search loop. With the cache on, a resumed,
repeated or decoding run of the same model and shapes loads those programs from disk instead of
compiling them. ``biseq train``, ``predict``, ``lexicon``, ``evaluate`` and the Python API turn it on.

Where: ``$BISEQ_COMPILE_CACHE`` (``off`` turns it off), else ``<biseq cache>/jax`` (``$BISEQ_CACHE``
or ``~/.cache/biseq``), at most ``MAX_BYTES`` (least recently used programs go first). JAX's own
``JAX_COMPILATION_CACHE_DIR``, when set, is left to JAX. JAX reads the setting at its first
compilation, so :func:`enable` must come before any.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

ENV = "BISEQ_COMPILE_CACHE"
MAX_BYTES = 4 << 30


def directory() -> Path | None:
    """The cache directory biseq would use, or ``None`` when it is turned off or left to JAX."""
    if os.environ.get("KERAS_BACKEND", "jax") != "jax" or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    chosen = os.environ.get(ENV, "")
    if chosen.lower() in ("off", "0", "no", "false"):
        return None
    if chosen:
        return Path(chosen)
    from biseq.joint_sequence import cache_dir

    return cache_dir() / "jax"


def enable() -> Path | None:
    """Turn the cache on for this process (every program, however quick to compile); the directory or ``None``."""
    path = directory()
    if path is None:
        return None
    try:
        import jax

        jax.config.update("jax_compilation_cache_dir", str(path))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        if importlib.util.find_spec("filelock") is not None:  # JAX needs it to bound the size
            jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    except (ImportError, AttributeError, ValueError):  # an older JAX without these options: no cache
        return None
    return path
