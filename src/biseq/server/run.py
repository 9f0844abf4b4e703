"""Run the application on uvicorn: ``biseq serve``, one process or several sharing the port."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time

import uvicorn

from biseq.g2p import load
from biseq.server.app import create_app
from biseq.server.settings import ServeConfig

_LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
log = logging.getLogger("biseq.server")


def _run_server(app, *, host: str, port: int, sock: socket.socket | None = None) -> bool:
    """uvicorn until SIGINT / SIGTERM (graceful: the requests in flight are answered); whether it started."""
    config = uvicorn.Config(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=30)
    server = uvicorn.Server(config)
    # uvicorn shuts down gracefully on SIGTERM / SIGINT, then raises the signal again on the handler
    # that was there before it: make that one a no-op, so a graceful stop exits 0.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock] if sock is not None else None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return server.started


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with ``SO_REUSEPORT``: each worker binds its own, and the kernel spreads
    new connections over the workers listening (one shared socket gives a burst of connections, and with
    keep-alive all their requests, to whichever process accepts first)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _stop_with(parent: int) -> None:
    """SIGTERM this process (a graceful stop) once ``parent`` is gone, e.g. killed with SIGKILL."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def _worker(model: str | None, host: str, port: int, settings: dict) -> None:
    """One worker process: its own socket, system, micro-batcher and cache; listens once loaded."""
    os.setpgrp()  # Ctrl-C reaches the parent alone, which stops each worker once (a second signal forces uvicorn)
    threading.Thread(target=_stop_with, args=(os.getppid(),), daemon=True).start()  # no orphans serving on
    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
    sock = _reuse_port_socket(host, port)
    app = create_app(load(model), settings=ServeConfig.from_dict(settings, where="serve"), load_before_serving=True)
    sys.exit(0 if _run_server(app, host=host, port=port, sock=sock) else 1)


def _serve_workers(model: str | None, *, host: str, port: int, settings: ServeConfig, workers: int) -> int:
    """``workers`` processes on one port until SIGINT / SIGTERM, which each then gets once; 0 when all stopped
    cleanly, 1 when one ended by itself (the others are stopped too)."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("--workers needs SO_REUSEPORT (Linux, macOS, BSD)")
    _reuse_port_socket(host, port).close()  # the port is free (an error here names it, before any process starts)
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_worker, args=(model, host, port, settings.to_dict()), name=f"worker-{i}")
                for i in range(workers)]
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for child in children:
            child.start()
        log.info("biseq serve: %d worker processes on http://%s:%d", workers, host, port)
        while not stop.wait(0.5) and all(child.is_alive() for child in children):
            pass
        for child in children:
            if child.is_alive():
                os.kill(child.pid, signal.SIGTERM)
        for child in children:
            child.join(60)
            if child.is_alive():
                child.kill()
                child.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    ended = [c for c in children if c.exitcode != 0]
    for child in ended:
        log.error("biseq serve: %s exited with %s", child.name, child.exitcode)
    return 0 if stop.is_set() and not ended else 1


def serve(model: str | None, *, host: str = "127.0.0.1", port: int = 8000, settings: ServeConfig | None = None,
          workers: int = 1) -> int:
    """Serve the system at ``model`` (default: the bundled English system) until SIGINT or SIGTERM.

    The system directory is checked before the port is bound (a bad one is an error naming the
    file); the network loads and compiles in the background while ``/health`` answers 503. On
    SIGTERM uvicorn stops accepting connections, the requests in flight and in the queue are
    answered, and the process exits 0.

    ``workers`` > 1: that many processes on the port, each with its own copy of the system, micro-batcher
    and cache, listening once it has loaded (``/health`` then answers 200 from any of them): one process
    handles HTTP and decodes on one core (Python's GIL), so more cores need more processes. SIGTERM
    to the parent stops every worker as above.
    """
    # The NumPy path's matrix products are small; a second OpenBLAS thread spins on the core the
    # event loop needs: one thread halved the server's CPU time at equal throughput (2 cores, 20-word
    # requests: 17-18 s against 31-33 s for 3,000 requests). Set OPENBLAS_NUM_THREADS to choose.
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    g2p = load(model)  # reads system.json only: a missing or broken directory fails here, clearly
    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
    settings = settings or ServeConfig()
    if workers > 1:
        return _serve_workers(model, host=host, port=port, settings=settings, workers=workers)
    return 0 if _run_server(create_app(g2p, settings=settings), host=host, port=port) else 1
