"""Checkpoint of an offline fit: the trained model with its data contract and optimiser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from checkpoints.format import save_checkpoint
from lt4rec.config import AppConfig
from lt4rec.train.fit import FitResult


def save_fit(path: str | Path, cfg: AppConfig, result: FitResult, **extra: Any) -> Path:
    """Write ``result`` (model, masks, spec, normalizer, optimiser, scalar metrics) to ``path``."""
    scalars = {k: v for k, v in result.metrics.items() if isinstance(v, int | float | str)}
    return save_checkpoint(
        path,
        result.model,
        config=cfg,
        spec=result.spec.to_dict(),
        normalizer=result.normalizer.to_dict(),
        optimizer=result.optimizer.state_dict(),
        metrics=scalars,
        step=result.steps,
        extra={"train_rows": result.train_rows, **extra},
    )
