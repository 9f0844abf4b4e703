"""Atomic writes of a user's files: a temporary file in the same directory, flushed, then ``os.replace``,
with the permissions a file created plainly would have (``tempfile`` makes its files 0600 and its
directories 0700). Standard library only: the dictionary-only paths import it without NumPy.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def share(path: str | Path) -> None:
    """Give a file or directory made by ``tempfile`` the permissions of one made plainly (``0o666`` or
    ``0o777`` less the umask): ``mkstemp`` makes files 0600 and ``mkdtemp`` directories 0700, which other users
    of a shared machine (or a container reading a mounted volume) could not read."""
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~_UMASK)


def replace_shared(tmp: str | Path, path: str | Path) -> None:
    """``os.replace(tmp, path)`` after :func:`share` (the end of every atomic write of a user's file)."""
    share(tmp)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace``; ordinary permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        replace_shared(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
