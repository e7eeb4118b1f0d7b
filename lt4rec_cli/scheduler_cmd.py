"""``lt4rec scheduler``: the daily re-pruning schedule (see streamer.scheduler)."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer

from lt4rec_cli.common import ConfigOpt, SetOpt, fail, load_cli_config


def scheduler_command(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    once: Annotated[
        bool, typer.Option("--once", help="Run the job once now (with the same exclusion), exit.")
    ] = False,
    max_runs: Annotated[
        int | None,
        typer.Option("--max-runs", help="Exit after this many run attempts (tests, demos).", min=1),
    ] = None,
) -> None:
    """Re-prune on a schedule (cron daily by default, or scheduler.interval_s), publish winners.

    Several schedulers may run against one registry: a database lease and one row per
    (job, window end) make each run happen once. SIGTERM / SIGINT stop after the current run.
    """
    cfg = load_cli_config(config, set_)
    from checkpoints.db import DatabaseError
    from streamer.notices.announce import open_announcer
    from streamer.scheduler import RepruneScheduler

    with open_announcer(cfg) as announce:
        try:
            sched = RepruneScheduler(cfg, announce=announce, say=lambda m: typer.echo(m, err=True))
        except DatabaseError as exc:
            raise fail(str(exc), 1) from exc
        _serve(sched, once, max_runs)


def _serve(sched: Any, once: bool, max_runs: int | None) -> None:
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        typer.echo(f"scheduler: {signal.Signals(signum).name}: stopping", err=True)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if once:
            outcome = sched.run_once("manual")
            if outcome.status == "failed":
                raise typer.Exit(1)
            return
        sched.serve(stop, max_runs=max_runs)
    finally:
        sched.close()


def register(app: typer.Typer) -> None:
    """Add the ``scheduler`` command to ``app``."""
    app.command("scheduler")(scheduler_command)
