"""Running the prediction server: uvicorn (httptools + uvloop), one or N processes.

The listening socket is bound here first (so ``port = 0`` works and the address is printed
before any worker starts), then handed to uvicorn. With ``workers > 1`` uvicorn's supervisor
spawns the workers on the same socket; each worker builds its own app from the effective
configuration (:data:`~streamer.serve.app.CONFIG_ENV`), follows the models topic itself and
writes its metrics to a shared Prometheus multiprocess directory. SIGTERM / SIGINT drain
in-flight requests and stop.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable

import orjson

from lt4rec.config import AppConfig, to_dict
from streamer.serve.app import CONFIG_ENV, create_app
from streamer.serve.metrics import MULTIPROC_ENV


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port = 0``: an ephemeral port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_config(cfg: AppConfig, app: object) -> object:
    import uvicorn

    sc = cfg.serve
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        loop="uvloop",
        http="httptools",
        lifespan="on",
        workers=sc.workers,
        factory=isinstance(app, str),
        access_log=sc.access_log,
        log_level="warning",
        limit_concurrency=sc.limit_concurrency,
        timeout_keep_alive=sc.timeout_keep_alive_s,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


def serve(cfg: AppConfig, say: Callable[[str], None] = print) -> None:
    """Serve until SIGTERM / SIGINT (blocks)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    sc = cfg.serve
    sock = bind(sc.host, sc.port)
    host, port = sock.getsockname()[:2]
    say(f"serve: listening on http://{host}:{port} ({sc.workers} worker(s), engine {sc.engine})")
    # uvicorn re-raises the stop signal after its graceful shutdown; with a handler of ours
    # in place that re-raise returns here and the process exits 0 after draining
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: None)
    if sc.workers == 1:
        server = uvicorn.Server(uvicorn_config(cfg, create_app(cfg)))  # type: ignore[arg-type]
        server.run(sockets=[sock])
        say("serve: stopped")
        return
    metrics_dir = tempfile.mkdtemp(prefix="lt4rec-serve-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    os.environ[CONFIG_ENV] = orjson.dumps(to_dict(cfg)).decode()
    try:
        config = uvicorn_config(cfg, "streamer.serve.app:app_from_env")
        Multiprocess(config, sockets=[sock]).run()  # type: ignore[arg-type]
        say("serve: stopped")
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
