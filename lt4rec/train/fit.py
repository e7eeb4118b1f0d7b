"""``run_fit``: the offline fit composed from :mod:`lt4rec.train.steps`.

Flow: encode train/valid/test (normalizer fitted on train only) -> build the model from ONE
seed -> for ``sparse_sharing`` search each task's ticket by IMP on validation (the CVR ticket
may use its own rate, ``prune.cvr_rate``) and install the masks on the shared initial
weights, or with ``prune.joint_start = "rewind"`` on the tickets' merged step-k states ->
joint training for up to ``train.epochs`` epochs, validated every ``train.eval_every`` steps
and per epoch, keeping the state with the best validation ``train.objective`` -> test
metrics (and oracle metrics when the test file has the simulator's ``p_click`` /
``p_conversion`` columns) -> :class:`FitResult` (JSON and plots optional).

Checkpoints are written by the caller (``checkpoints.save_fit``): the model core does no
checkpoint I/O.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lt4rec.config import AppConfig, to_dict
from lt4rec.data import FeatureSpec, Normalizer
from lt4rec.data.batch import TASKS
from lt4rec.models.blocks import MultiTaskModel
from lt4rec.pruning.imp import Ticket
from lt4rec.train.loop import Predictions, predict
from lt4rec.train.optim import TaskMaskedAdam
from lt4rec.train.steps import (
    eval_batches,
    init_model,
    install_tickets,
    load_splits,
    model_report,
    oracle_columns,
    prediction_metrics,
    resolve_device,
    search_tickets,
    train_joint,
)

__all__ = ["FitResult", "resolve_device", "run_fit", "write_plots"]


@dataclass
class FitResult:
    """A trained model with everything a checkpoint or a report needs."""

    model: MultiTaskModel
    optimizer: TaskMaskedAdam
    spec: FeatureSpec
    normalizer: Normalizer
    metrics: dict[str, Any]
    tickets: dict[str, Ticket]
    steps: int  # optimiser steps of joint training
    train_rows: int
    test_predictions: Predictions | None = None  # in test-file row order


def run_fit(
    cfg: AppConfig,
    train: str | Path,
    valid: str | Path,
    test: str | Path,
    features: str | Path,
    json_out: str | Path | None = None,
    plots_dir: str | Path | None = None,
    progress: bool | None = None,
) -> FitResult:
    """Train ``cfg.model.name``, evaluate it on ``test`` and optionally write JSON / plots."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    t_start = time.perf_counter()
    data = load_splits(cfg, train, valid, test, features)
    assert data.test is not None
    model, init_state = init_model(cfg, data.schema, device)
    gen = torch.Generator().manual_seed(cfg.train.seed)

    t_prune = time.perf_counter()
    tickets = search_tickets(cfg, model, init_state, data.train, data.valid, device, gen)
    install_tickets(cfg, model, init_state, tickets)
    prune_s = time.perf_counter() - t_prune

    joint = train_joint(cfg, model, data.train, data.valid, device, gen, progress)

    oracle = oracle_columns(test, len(data.test))
    metrics: dict[str, Any] = {"model": cfg.model.name, "seed": cfg.train.seed}
    preds = predict(model, eval_batches(data.test, cfg.data.batch_size), device)
    metrics.update(prediction_metrics(preds, oracle))
    metrics.update(
        {f"valid_{k}": v for k, v in joint.valid_metrics.items() if k.endswith(("auc", "logloss"))}
    )
    metrics.update(model_report(model))
    metrics["objective"] = cfg.train.objective  # what chose the kept state (valid split)
    metrics["best_epoch"] = joint.best_epoch
    metrics["best_step"] = joint.best_step
    metrics["epochs_run"] = joint.epochs_run
    metrics["steps"] = joint.steps
    metrics["validation"] = joint.history
    metrics["train_seconds"] = joint.seconds
    metrics["prune_seconds"] = prune_s
    metrics["load_seconds"] = data.seconds
    metrics["fit_seconds"] = time.perf_counter() - t_start
    metrics["examples_per_s"] = joint.examples / joint.seconds if joint.seconds > 0 else 0.0
    metrics["train_rows"] = len(data.train)
    metrics["device"] = str(device)
    metrics["torch_threads"] = torch.get_num_threads()
    if tickets:
        metrics["pruning"] = {
            t: {
                "selected_round": k.selected_round,
                "rewind_step": k.rewind_step,
                "rounds": [r.__dict__ for r in k.rounds],
            }
            for t, k in tickets.items()
        }
    metrics["config"] = to_dict(cfg)
    if json_out is not None:
        out = Path(json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if plots_dir is not None:
        write_plots(metrics, tickets, plots_dir)
    return FitResult(
        model, joint.optimizer, data.spec, data.normalizer, metrics, tickets, joint.steps,
        len(data.train), preds,
    )  # fmt: skip


def write_plots(metrics: dict[str, Any], tickets: dict[str, Ticket], plots_dir: str | Path) -> None:
    """Pruning curve and mask-overlap PNGs (sparse sharing only) under ``plots_dir``."""
    from lt4rec.report.plots import plot_mask_overlap, plot_pruning_curve

    d = Path(plots_dir)
    if tickets:
        plot_pruning_curve(
            {t: [r.__dict__ for r in k.rounds] for t, k in tickets.items()},
            d / "pruning_curve.png",
        )
    share = metrics.get("sharing")
    if share:
        plot_mask_overlap(share["layers"], TASKS, d / "mask_overlap.png")
