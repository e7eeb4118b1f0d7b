"""``lt4rec fit``: train one model on Parquet splits and write its metrics JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lt4rec_cli.common import (
    ConfigOpt,
    SetOpt,
    check_output_dir,
    check_output_file,
    fail,
    load_cli_config,
)


def fit_command(
    train: Annotated[Path, typer.Option("--train", help="Training Parquet file or directory.")],
    valid: Annotated[
        Path, typer.Option("--valid", help="Validation Parquet (early stopping, tickets).")
    ],
    test: Annotated[Path, typer.Option("--test", help="Test Parquet (reported metrics).")],
    features: Annotated[Path, typer.Option("--features", help="Feature spec JSON.")],
    json_out: Annotated[Path, typer.Option("--json", help="Where to write the metrics JSON.")],
    model: Annotated[str | None, typer.Option("--model", help="Model name (model.name).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (train.seed).")] = None,
    plots: Annotated[Path | None, typer.Option("--plots", help="Directory for PNG plots.")] = None,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="Write a checkpoint here.")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Train a CTR/CVR model (sparse_sharing: per-task lottery tickets) and evaluate it."""
    from lt4rec.models import MODELS

    sets = list(set_ or [])
    if model is not None:
        if model not in MODELS:
            raise fail(f"unknown model {model!r}; known models: {', '.join(sorted(MODELS))}")
        sets.append(f"model.name={model}")
    if seed is not None:
        sets.append(f"train.seed={seed}")
    cfg = load_cli_config(config, sets)
    check_output_file(json_out, "--json")  # before training: never fail after a long run
    if checkpoint is not None:
        check_output_file(checkpoint, "--checkpoint")
    if plots is not None:
        check_output_dir(plots, "--plots")
    from checkpoints.fit import save_fit
    from lt4rec.data import DataError, SpecError
    from lt4rec.train.fit import run_fit

    try:
        result = run_fit(cfg, train, valid, test, features, json_out, plots)
        if checkpoint is not None:
            save_fit(checkpoint, cfg, result)
    except (DataError, SpecError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    except ValueError as exc:
        raise fail(f"fit failed: {exc}") from exc
    metrics = result.metrics
    keys = ("ctr_auc", "cvr_auc", "ctcvr_auc", "density_ctr", "density_cvr", "train_seconds")
    summary = {k: metrics[k] for k in keys if k in metrics}
    typer.echo(json.dumps({"model": cfg.model.name, **summary}))


def register(app: typer.Typer) -> None:
    """Add the ``fit`` command to ``app``."""
    app.command("fit")(fit_command)
