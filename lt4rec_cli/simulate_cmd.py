"""``lt4rec simulate``: write a simulated video-feed traffic log with ground truth."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from lt4rec_cli.common import ConfigOpt, SetOpt, fail, load_cli_config


def simulate_command(
    out: Annotated[Path, typer.Option("--out", help="Output directory (created if missing).")],
    impressions: Annotated[
        int | None, typer.Option("--impressions", help="Number of impressions (sim.impressions).")
    ] = None,
    days: Annotated[int | None, typer.Option("--days", help="Days of traffic (sim.days).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (sim.seed).")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Simulate impressions, clicks and conversions into train/valid/test Parquet + spec.json.

    The same seed and configuration always give byte-identical files.
    """
    from lt4rec.data.simulator import simulate

    cfg = load_cli_config(config, set_).sim
    flags: dict[str, Any] = {"impressions": impressions, "days": days, "seed": seed}
    try:
        cfg = dataclasses.replace(cfg, **{k: v for k, v in flags.items() if v is not None})
    except ValueError as exc:
        raise fail(f"invalid simulator setting: {exc}") from exc
    if out.exists() and not out.is_dir():
        raise fail(f"--out {out} exists and is not a directory")
    try:
        summary = simulate(cfg, out)
    except OSError as exc:
        raise fail(f"cannot write to {out}: {exc}") from exc
    o = summary.overall
    rate = summary.overall.rows / max(summary.seconds, 1e-9)
    typer.echo(
        f"wrote {o.rows} impressions to {out} in {summary.seconds:.1f} s ({rate:,.0f} rows/s): "
        + ", ".join(f"{k}={v.rows}" for k, v in summary.splits.items())
    )
    typer.echo(
        f"click rate {o.click_rate}, conversion rate {o.conversion_rate}, CVR on clicks {o.cvr}; "
        f"oracle AUC ctr {o.oracle_auc_ctr} cvr {o.oracle_auc_cvr}"
    )


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command to ``app``."""
    app.command("simulate")(simulate_command)
