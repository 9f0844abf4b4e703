"""``biseq train`` under tcmalloc when the system has it: a faster training step, no code change.

XLA's CPU runtime allocates a large temporary buffer for every training step (142 MB for the main
G2P recipe at 8 x 8). glibc returns allocations that large to the kernel when they are freed, so
every step first-touches fresh zeroed pages: ~11 % of the step went to filling buffers at 0.4-2.5
GB/s (``benchmarks/profile_step.md``). tcmalloc keeps freed memory for the next step: the same
training 1.12-1.31x faster (``benchmarks/allocator_ab.json``). glibc's own settings
(``MALLOC_MMAP_MAX_``, ``MALLOC_TRIM_THRESHOLD_``) were measured no faster.

An allocator is chosen when a process starts (``LD_PRELOAD``), so the command-line ``biseq train``
starts itself again, the same process id and arguments, with ``LD_PRELOAD`` naming tcmalloc, when
it finds the library (Debian/Ubuntu: ``apt-get install libtcmalloc-minimal4``). It does not when
``BISEQ_ALLOCATOR=system`` is set, when ``LD_PRELOAD`` is set already, or off Linux. Python code
calling :func:`biseq.training.train` itself keeps its process's allocator (start Python with
``LD_PRELOAD`` to get the same gain).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

SWITCH = "BISEQ_ALLOCATOR"  # "system": keep glibc's allocator
NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
DIRECTORIES = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib64",
               "/usr/local/lib")


def find_tcmalloc(directories: Sequence[str] = DIRECTORIES) -> str | None:
    """The path of a tcmalloc shared library in the usual library directories, or ``None``."""
    for directory in directories:
        for name in NAMES:
            path = Path(directory) / name
            if path.is_file():
                return str(path)
    return None


def tcmalloc_environment(environ: dict[str, str] | None = None, *, library: str | None = None) -> dict[str, str] | None:
    """``environ`` (default: this process's) with ``LD_PRELOAD`` naming tcmalloc, or ``None`` when it does not
    apply: ``BISEQ_ALLOCATOR=system``, ``LD_PRELOAD`` already set, not Linux, or no tcmalloc library found."""
    environ = dict(os.environ if environ is None else environ)
    if sys.platform != "linux" or environ.get(SWITCH, "") == "system" or environ.get("LD_PRELOAD"):
        return None
    library = library or find_tcmalloc()
    return None if library is None else {**environ, "LD_PRELOAD": library}


def restart_under_tcmalloc(argv: Sequence[str], *, environ: dict[str, str] | None = None,
                           library: str | None = None) -> None:
    """Replace this process by ``python -m biseq.cli ARGV`` with tcmalloc preloaded, when it applies
    (:func:`tcmalloc_environment`); otherwise return, doing nothing."""
    preloaded = tcmalloc_environment(environ, library=library)
    if preloaded is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "biseq.cli", *argv], preloaded)


def allocator_name() -> str:
    """``"tcmalloc"`` when this process runs under it (preloaded), else ``"system"``."""
    return "tcmalloc" if "tcmalloc" in os.environ.get("LD_PRELOAD", "") else "system"
