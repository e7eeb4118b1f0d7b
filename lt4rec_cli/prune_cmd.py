"""``lt4rec prune``: one re-pruning run on a window of the archive (see streamer.reprune)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from lt4rec_cli.common import ConfigOpt, SetOpt, fail, load_cli_config

EXIT_REJECTED = 3  # the candidate was registered but gated out: nothing changed in service


def prune_command(
    window_days: Annotated[
        float | None,
        typer.Option(
            "--window-days",
            help="Days of archive to learn from (reprune.window_days).",
            min=0.001,
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--end",
            help="Window end: DATE (its 00:00 UTC) or ISO time; default: as "
            "late as the archive's labels are final.",
            metavar="DATE",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Re-run lottery-ticket pruning on the archive window, gate it, publish if it wins.

    Exit 0 when a version was published (or registered with reprune.publish = false), 3 when
    the gate rejected the candidate, 1 when the run failed (the reason is in the registry).
    """  # fmt: skip
    cfg = load_cli_config(config, set_)
    from streamer.notices.announce import open_announcer
    from streamer.reprune import WindowError, parse_end, run_reprune

    try:
        end_ms = parse_end(end) if end is not None else None
    except WindowError as exc:
        raise fail(str(exc)) from exc
    with open_announcer(cfg) as announce:
        report = run_reprune(
            cfg, end=end_ms, days=window_days, announce=announce,
            log=lambda m: typer.echo(m, err=True),
        )  # fmt: skip
    if as_json:
        data = {k: v for k, v in report.__dict__.items() if k != "notice"}
        typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        typer.echo(f"prune: {report.status} (version {report.version}): {report.reason}")
    if report.status == "failed":
        raise typer.Exit(1)
    if report.status == "rejected":
        raise typer.Exit(EXIT_REJECTED)


def register(app: typer.Typer) -> None:
    """Add the ``prune`` command to ``app``."""
    app.command("prune")(prune_command)
