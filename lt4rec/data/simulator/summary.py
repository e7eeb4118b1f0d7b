"""Statistics of a simulated log: counts, label rates, delays, oracle AUCs.

Written to ``summary.json`` so that a reader can check the log against the targets (CTR
~5-10 %, CVR on clicks ~3-10 %) and know the best AUC any model can reach (the oracle uses
the true probabilities).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC by the rank-sum formula (ties get average ranks); None if one class only."""
    y = labels.astype(bool)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    ranks = np.empty(y.size, dtype=np.float64)
    # average rank within runs of equal scores
    boundaries = np.flatnonzero(np.diff(s) != 0) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [s.size]])
    avg = (starts + ends + 1) / 2.0  # 1-based average rank of each run
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


@dataclass(frozen=True)
class SplitStats:
    rows: int
    clicks: int
    conversions: int
    click_rate: float | None  # clicks / impressions
    conversion_rate: float | None  # conversions / impressions
    cvr: float | None  # conversions / clicks
    oracle_auc_ctr: float | None  # AUC of p_click on click
    oracle_auc_cvr: float | None  # AUC of p_conversion on conversion, clicked rows
    oracle_auc_ctcvr: float | None  # AUC of p_click * p_conversion on conversion


def split_stats(table: pa.Table) -> SplitStats:
    """Stats of one table with the simulator's columns."""
    n = table.num_rows
    click = table.column("click").to_numpy()
    conv = table.column("conversion").to_numpy()
    pc_ = table.column("p_click").to_numpy()
    pv = table.column("p_conversion").to_numpy()
    clicks, convs = int(click.sum()), int(conv.sum())
    clicked = click == 1
    return SplitStats(
        rows=n,
        clicks=clicks,
        conversions=convs,
        click_rate=_r(clicks / n) if n else None,
        conversion_rate=_r(convs / n) if n else None,
        cvr=_r(convs / clicks) if clicks else None,
        oracle_auc_ctr=_r(auc(click, pc_)),
        oracle_auc_cvr=_r(auc(conv[clicked], pv[clicked])),
        oracle_auc_ctcvr=_r(auc(conv, pc_ * pv)),
    )


@dataclass(frozen=True)
class SimSummary:
    """What :func:`~lt4rec.data.simulator.simulate` wrote and the log's statistics."""

    out_dir: str
    files: dict[str, str]  # split name -> file name
    overall: SplitStats
    splits: dict[str, SplitStats]
    events: dict[str, Any]  # click / conversion events including those outside the windows
    config: dict[str, Any]
    seconds: float = field(default=0.0, compare=False)  # wall time (not written to the file)

    def to_dict(self) -> dict[str, Any]:
        """JSON form of ``summary.json`` (deterministic: no wall time, no absolute paths)."""
        out = asdict(self)
        out.pop("seconds")
        out.pop("out_dir")
        return out
