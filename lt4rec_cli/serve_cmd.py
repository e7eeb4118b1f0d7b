"""``lt4rec serve``: the prediction server (see streamer.serve and docs/serving.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from lt4rec_cli.common import (
    ConfigOpt,
    LogLevelOpt,
    SetOpt,
    check_log_level,
    fail,
    load_cli_config,
    setup_logging,
)


def serve_command(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Server processes (serve.workers).", min=1, max=64),
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Bind address (serve.host).")] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", help="Port (serve.port; 0 = ephemeral).", min=0, max=65535),
    ] = None,
    log_level: LogLevelOpt = "warning",
) -> None:
    """Serve /predict with the published model; follow topics.models and hot-swap versions.

    Binds 127.0.0.1 by default. Loads the version in service from the registry at start
    (503 on /predict and /healthz until one is loaded); SIGTERM / SIGINT drain and stop.
    """
    check_log_level(log_level)
    sets = list(set_ or [])
    for key, value in (("workers", workers), ("host", host), ("port", port)):
        if value is not None:
            sets.append(f"serve.{key}={value!r}" if isinstance(value, str) else
                        f"serve.{key}={value}")  # fmt: skip
    cfg = load_cli_config(config, sets)
    setup_logging(log_level)
    from streamer.serve.server import serve

    try:
        serve(cfg, say=lambda m: typer.echo(m, err=True))
    except OSError as exc:  # address in use, permission denied
        raise fail(f"cannot listen on {cfg.serve.host}:{cfg.serve.port}: {exc}", 1) from exc


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""
    app.command("serve")(serve_command)
