"""Run the application on uvicorn: ``biseq serve``."""

from __future__ import annotations

import logging
import os
import signal
import sys

import uvicorn

from biseq.g2p import load
from biseq.server.app import create_app
from biseq.server.settings import ServeConfig


def serve(model: str | None, *, host: str = "127.0.0.1", port: int = 8000, settings: ServeConfig | None = None) -> int:
    """Serve the system at ``model`` (default: the bundled English system) until SIGINT or SIGTERM.

    The system directory is checked before the port is bound (a bad one is an error naming the
    file); the network loads and compiles in the background while ``/health`` answers 503. On
    SIGTERM uvicorn stops accepting connections, the requests in flight and in the queue are
    answered, and the process exits 0.
    """
    # The NumPy path's matrix products are small; a second OpenBLAS thread spins on the core the
    # event loop needs: one thread halved the server's CPU time at equal throughput (2 cores, 20-word
    # requests: 17-18 s against 31-33 s for 3,000 requests). Set OPENBLAS_NUM_THREADS to choose.
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    g2p = load(model)  # reads system.json only: a missing or broken directory fails here, clearly
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(g2p, settings=settings)
    config = uvicorn.Config(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=30)
    server = uvicorn.Server(config)
    # uvicorn shuts down gracefully on SIGTERM / SIGINT, then raises the signal again on the handler
    # that was there before it: make that one a no-op, so a graceful stop exits 0.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if server.started else 1
