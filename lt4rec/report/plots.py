"""PNG plots of a fit (matplotlib, Agg backend): pruning curves and mask overlap."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_pruning_curve(history: Mapping[str, Sequence[Mapping[str, Any]]], path: Path) -> Path:
    """Validation AUC vs MLP density per task (one line per task, log-scaled density)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for task, rounds in history.items():
        xs = [r["density"] for r in rounds]
        ys = [r["valid_auc"] for r in rounds]
        ax.plot(xs, ys, marker="o", label=task)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("MLP density (kept fraction)")
    ax.set_ylabel("validation AUC")
    ax.set_title("Lottery-ticket pruning curve per task")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_mask_overlap(
    layers: Mapping[str, Mapping[str, float]], tasks: Sequence[str], path: Path
) -> Path:
    """Stacked bars per layer: shared, private per task and pruned fractions."""
    names = list(layers)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(names)), 4))
    bottom = [0.0] * len(names)
    parts = ["shared_fraction", *[f"private_fraction_{t}" for t in tasks], "pruned_fraction"]
    for key in parts:
        vals = [float(layers[n].get(key, 0.0)) for n in names]
        ax.bar(names, vals, bottom=bottom, label=key.replace("_fraction", ""))
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_ylabel("fraction of weights")
    ax.set_title("Mask overlap per layer")
    ax.legend(fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
