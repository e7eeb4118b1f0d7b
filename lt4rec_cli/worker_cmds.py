"""``lt4rec worker`` (the online-learning daemon) and ``lt4rec worker status``.

``streamer`` is imported inside the commands so that model-side commands never load Kafka.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from lt4rec_cli.common import (
    ConfigOpt,
    LogLevelOpt,
    SetOpt,
    fail,
    load_cli_config,
    setup_logging,
    stop_on_signals,
)

worker_app = typer.Typer(
    help="Online worker: fine-tune the model from the example stream (masks frozen).",
    invoke_without_command=True,
)


@worker_app.callback()
def worker(
    ctx: typer.Context,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    exit_when_idle: Annotated[
        float | None,
        typer.Option(
            "--exit-when-idle",
            help="Train what is pending, checkpoint and exit after this many seconds without "
            "records (not counted before the first assignment).",
            metavar="SECONDS",
            min=0.0,
        ),
    ] = None,
    log_level: LogLevelOpt = "warning",
) -> None:
    """Run the online worker: Kafka examples -> masked fine-tuning -> online checkpoints."""
    if ctx.invoked_subcommand is not None:
        return
    cfg = load_cli_config(config, sets)
    setup_logging(log_level)
    from kafka.errors import KafkaError
    from sqlalchemy.exc import SQLAlchemyError

    from checkpoints.db import DatabaseError, safe_url
    from streamer.kafka.admin import TopicLayoutError
    from streamer.worker import WorkerDaemon, WorkerError, WorkerOptions

    try:
        daemon = WorkerDaemon(cfg, WorkerOptions(exit_when_idle))
    except (WorkerError, DatabaseError) as exc:
        raise fail(str(exc)) from exc
    except (OSError, ValueError, KafkaError, SQLAlchemyError) as exc:
        raise fail(
            f"cannot start the worker (Kafka {cfg.kafka.bootstrap}, registry "
            f"{safe_url(cfg.registry.url)}): {type(exc).__name__}: {exc}"
        ) from exc
    typer.echo(f"worker: starting from {daemon.start.source}", err=True)
    for info, reason in daemon.start.skipped:
        typer.echo(f"worker: refused corrupt version {info.version}: {reason}", err=True)

    stop_on_signals("worker", "checkpointing", daemon.request_stop)
    try:
        s = daemon.run()
    except KafkaError as exc:
        raise fail(f"Kafka error: {exc} (is the broker at {cfg.kafka.bootstrap} up?)", 1) from exc
    except (TopicLayoutError, WorkerError, DatabaseError) as exc:
        raise fail(str(exc), 1) from exc
    except (SQLAlchemyError, OSError) as exc:
        raise fail(f"{type(exc).__name__}: {exc}", 1) from exc
    c, r = s.counters, s.rolling
    typer.echo(
        f"worker: {s.records} records in {s.seconds:.1f}s, trained={c.get('examples', 0)} "
        f"duplicates={c.get('duplicates', 0)} dead_letters={c.get('dead_letters', 0)} "
        f"version={s.version} ctr_auc={r.get('ctr_auc', float('nan')):.4f} "
        f"cvr_auc={r.get('cvr_auc', float('nan')):.4f}",
        err=True,
    )


@worker_app.command("status")
def status(
    config: ConfigOpt = None,
    sets: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Current version, offsets and lag per partition, counters, rolling metrics.

    Exit code 0 when healthy, 1 when not (no online version, or examples wait and the newest
    checkpoint is older than worker.stale_after_s), 2 on errors.
    """
    cfg = load_cli_config(config, sets)
    setup_logging("warning")
    from kafka.errors import KafkaError

    from checkpoints.db import DatabaseError
    from streamer.worker.status import format_status, worker_status

    try:
        report = worker_status(cfg)
    except (KafkaError, DatabaseError, OSError) as exc:
        raise fail(f"cannot read the worker status: {type(exc).__name__}: {exc}") from exc
    typer.echo(json.dumps(report, indent=2, sort_keys=True) if as_json else format_status(report))
    if not report["healthy"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the worker commands to ``app``."""
    app.add_typer(worker_app, name="worker")
