"""Streaming commands: ``streamer`` (the joiner daemon) and ``stream replay``.

``streamer`` is imported lazily inside the command functions so that the model-side commands
never import kafka-python.
"""

from __future__ import annotations

from pathlib import Path
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
    stop_on_signals,
)

stream_app = typer.Typer(
    help="Event-stream tools (replay simulator data into Kafka).", no_args_is_help=True
)


def _safe_url(url: str) -> str:
    """The store URL without its password (for messages)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL (e.g. memory://): nothing secret to hide
        return url


def streamer(
    config: ConfigOpt = None,
    sets: SetOpt = None,
    exit_when_idle: Annotated[
        float | None,
        typer.Option(
            "--exit-when-idle",
            help="Exit after this many seconds without records (not counted while no "
            "partitions are assigned yet or a rebalance runs).",
            metavar="SECONDS",
            min=0.0,
        ),
    ] = None,
    flush_at_end: Annotated[
        bool,
        typer.Option(
            "--flush-at-end",
            help="On an idle exit, first close every open window and emit its final "
            "example (the end of a replay). Not after SIGTERM/SIGINT: a restart resumes.",
        ),
    ] = False,
    log_level: LogLevelOpt = "warning",
) -> None:
    """Run the event joiner: Kafka impressions/clicks/conversions -> labelled examples."""
    check_log_level(log_level)
    cfg = load_cli_config(config, sets)
    setup_logging(log_level)
    from kafka.errors import KafkaError
    from sqlalchemy.exc import SQLAlchemyError

    from streamer.daemon import DaemonOptions, JoinerDaemon, RebalanceStalled
    from streamer.kafka.admin import TopicLayoutError
    from streamer.store import StoreError
    from streamer.store.sql import db_error

    try:
        daemon = JoinerDaemon(cfg, DaemonOptions(exit_when_idle, flush_at_end))
    except (OSError, ValueError, KafkaError, SQLAlchemyError, StoreError) as exc:
        why = db_error(exc) if isinstance(exc, SQLAlchemyError) else f"{type(exc).__name__}: {exc}"
        raise fail(
            f"cannot start the joiner (Kafka {cfg.kafka.bootstrap}, "
            f"store {_safe_url(cfg.store.url)}): {why}"
        ) from exc

    stop_on_signals("joiner", "draining", daemon.request_stop)
    try:
        s = daemon.run()
    except KafkaError as exc:
        raise fail(f"Kafka error: {exc} (is the broker at {cfg.kafka.bootstrap} up?)", 1) from exc
    except TopicLayoutError as exc:
        raise fail(str(exc), 1) from exc
    except RebalanceStalled as exc:
        raise fail(f"{exc} (is the group coordinator healthy?)", 3) from exc
    except StoreError as exc:  # the real cause, one line (the engine already retried)
        raise fail(f"state store {_safe_url(cfg.store.url)}: {exc}", 1) from exc
    except SQLAlchemyError as exc:
        raise fail(f"state store {_safe_url(cfg.store.url)}: {db_error(exc)}", 1) from exc
    except OSError as exc:  # metrics port in use, archive directory not writable...
        raise fail(f"{type(exc).__name__}: {exc}", 1) from exc
    t = daemon.metrics.totals
    typer.echo(
        f"joiner: {s.records} records in {s.seconds:.1f}s, examples={s.examples} "
        f"dlq={s.dlq} archive_rows={s.archive_rows} dropped={int(t['dropped'])} "
        f"coerced={int(t['coerced'])}",
        err=True,
    )


@stream_app.command("replay")
def replay_cmd(
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="Simulator output directory (train/valid/test.parquet + spec.json)."
        ),
    ],
    bootstrap: Annotated[
        str | None, typer.Option("--bootstrap", help="Kafka HOST:PORT (default kafka.bootstrap).")
    ] = None,
    speedup: Annotated[
        float | None,
        typer.Option(
            "--speedup",
            help="Pace by event time / X (default: as fast as possible).",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Replay only the first N impressions.", min=1)
    ] = None,
    days: Annotated[
        int | None, typer.Option("--days", help="Replay only the first N days.", min=1)
    ] = None,
    workers: Annotated[
        int,
        typer.Option("--workers", help="Producer processes (partitions split among them).", min=1),
    ] = 1,
    config: ConfigOpt = None,
    sets: SetOpt = None,
) -> None:
    """Replay simulator Parquet into the input topics in event-time order."""
    setup_logging("warning")
    cfg = load_cli_config(
        config, [*(sets or []), *([f"kafka.bootstrap={bootstrap!r}"] if bootstrap else [])]
    )
    from kafka.errors import KafkaError

    from streamer.kafka.admin import ensure_topics
    from streamer.replay import ReplayError, load_events, replay

    if speedup is not None and speedup <= 0:
        raise fail("--speedup must be > 0")
    if not data.is_dir():
        raise fail(f"--data {data} is not a directory")
    try:
        events = load_events(data, days=days, limit=limit)
    except (ReplayError, OSError) as exc:
        raise fail(str(exc)) from exc
    try:
        ensure_topics(cfg.kafka, cfg.topics)
        stats = replay(events, cfg.kafka, cfg.topics, speedup=speedup, workers=workers)
    except (KafkaError, ReplayError) as exc:
        raise fail(f"replay failed: {exc} (is the broker at {cfg.kafka.bootstrap} up?)", 1) from exc
    typer.echo(
        f"replayed {stats.events} events ({stats.impressions} impressions, {stats.clicks} "
        f"clicks, {stats.conversions} conversions) in {stats.seconds:.1f}s "
        f"({stats.rate:,.0f} events/s)"
    )


def register(app: typer.Typer) -> None:
    """Add the streaming commands to ``app``."""
    app.command("streamer")(streamer)
    app.add_typer(stream_app, name="stream")
