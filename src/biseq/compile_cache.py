"""JAX's persistent compilation cache: one run's XLA programs reused by the next.

Every padded batch shape is one compilation of the training step (about 10 s each on an H100,
17 shapes on CMUdict) and every decoding shape one of a search loop. With the cache on, a resumed,
repeated or decoding run of the same model and shapes loads those programs from disk instead of
compiling them. ``biseq train``, ``predict``, ``lexicon``, ``evaluate``, ``serve`` and the Python
API turn it on.

Where: ``$BISEQ_COMPILE_CACHE`` (``off`` turns it off), else ``jax`` in :func:`cache_dir`. Its size
is not bounded: JAX's least-recently-used bound fails to write any entry into a directory that
already holds entries written without it (its access-time files are missing), which is what an
older biseq or a plain JAX cache leaves; delete the directory to reclaim the space. JAX's
own ``JAX_COMPILATION_CACHE_DIR``, when the user sets it, is left to JAX. JAX reads the setting at
its first compilation, so :func:`enable` must come before any; before JAX is imported it sets
JAX's environment variables and imports nothing (a dictionary lookup never loads JAX).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV = "BISEQ_COMPILE_CACHE"


def cache_dir() -> Path:
    """Where biseq keeps what it derives from shipped files: ``$BISEQ_CACHE`` or ``~/.cache/biseq``."""
    root = os.environ.get("BISEQ_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                         os.path.expanduser("~/.cache"), "biseq")
    return Path(root)


def directory() -> Path | None:
    """The cache directory biseq would use, or ``None`` when it is turned off or left to JAX."""
    if os.environ.get("KERAS_BACKEND", "jax") != "jax" or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    chosen = os.environ.get(ENV, "")
    if chosen.lower() in ("off", "0", "no", "false"):
        return None
    return Path(chosen) if chosen else cache_dir() / "jax"


def enable() -> Path | None:
    """Turn the cache on for this process (every program, however quick to compile); the directory or ``None``.

    ``None`` also when the directory cannot be created or written (a read-only home): JAX would warn
    at every compilation that it cannot write the entry.
    """
    path = directory()
    if path is None:
        return None
    try:  # a cache it cannot write would warn at every compilation: none instead
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(path, os.W_OK):
        return None
    settings = {"jax_compilation_cache_dir": str(path), "jax_persistent_cache_min_compile_time_secs": 0.0,
                "jax_persistent_cache_min_entry_size_bytes": 0}
    if "jax" not in sys.modules:  # JAX reads these when imported (and passes them to its subprocesses)
        os.environ.update({name.upper(): str(value) for name, value in settings.items()})
        return path
    try:
        import jax

        for name, value in settings.items():
            jax.config.update(name, value)
    except (AttributeError, ValueError):  # an older JAX without these options: no cache
        return None
    return path
