"""How the tasks' masks share the base network, per layer and overall."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def sharing_report(masks: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, dict[str, Any]]:
    """Per-layer and total density per task and shared / private / pruned fractions.

    ``masks[task][layer]`` are 0/1 tensors of equal shape across tasks. A weight is *shared*
    when every task keeps it, *private to t* when only t keeps it, *pruned* when no task does.
    """
    tasks = list(masks)
    if not tasks:
        return {"layers": {}, "total": {}}
    layers = list(masks[tasks[0]])
    rows: dict[str, dict[str, float]] = {}
    totals: dict[str, float] = {"numel": 0.0, "shared": 0.0, "pruned": 0.0}
    for t in tasks:
        totals[f"kept_{t}"] = 0.0
        totals[f"private_{t}"] = 0.0
    for name in layers:
        stack = torch.stack([masks[t][name].detach().cpu().bool() for t in tasks])  # [T, ...]
        n = float(stack[0].numel())
        keep_count = stack.sum(0)
        row = {"numel": n}
        shared = float((keep_count == len(tasks)).sum())
        pruned = float((keep_count == 0).sum())
        row["shared_fraction"] = shared / n
        row["pruned_fraction"] = pruned / n
        totals["numel"] += n
        totals["shared"] += shared
        totals["pruned"] += pruned
        for i, t in enumerate(tasks):
            kept = float(stack[i].sum())
            private = float((stack[i] & (keep_count == 1)).sum())
            row[f"density_{t}"] = kept / n
            row[f"private_fraction_{t}"] = private / n
            totals[f"kept_{t}"] += kept
            totals[f"private_{t}"] += private
        rows[name] = row
    n = totals["numel"] or 1.0
    total: dict[str, float] = {
        "numel": totals["numel"],
        "shared_fraction": totals["shared"] / n,
        "pruned_fraction": totals["pruned"] / n,
    }
    for t in tasks:
        total[f"density_{t}"] = totals[f"kept_{t}"] / n
        total[f"private_fraction_{t}"] = totals[f"private_{t}"] / n
    # Of the weights any task uses, the fraction used by all tasks.
    used = totals["numel"] - totals["pruned"]
    total["shared_of_used"] = totals["shared"] / used if used else 0.0
    return {"layers": rows, "total": total}


def format_sharing_table(report: Mapping[str, Mapping[str, Any]]) -> str:
    """A plain-text table of :func:`sharing_report` for logs."""
    layers = report.get("layers", {})
    if not layers:
        return "(dense model: no masks)"
    cols = [k for k in next(iter(layers.values())) if k != "numel"]
    head = f"{'layer':<20}{'numel':>10}" + "".join(f"{c:>22}" for c in cols)
    lines = [head]
    for name, row in layers.items():
        lines.append(
            f"{name:<20}{int(row['numel']):>10}" + "".join(f"{row[c]:>22.4f}" for c in cols)
        )
    return "\n".join(lines)
