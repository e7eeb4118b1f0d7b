"""Exact ranking metrics: AUC (ties get average ranks), PR-AUC, logloss and per-user GAUC.

All functions are vectorised numpy (one sort), fast on millions of rows, and return ``nan``
when a metric is undefined (e.g. only one class present).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _check(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores ({s.shape[0]}) and labels ({y.shape[0]}) differ in length")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return s, y > 0.5


def auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """ROC AUC = P(score of a random positive > random negative) + 0.5 P(tie)."""
    s, y = _check(scores, labels)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inv, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # 1-based rank of each distinct value's last row
    avg_rank = ends - (counts - 1) / 2.0  # average 1-based rank within each tie group
    rank_sum = float(avg_rank[inv][y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def pr_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the precision-recall curve as average precision (sklearn's definition):
    ``sum_k (R_k - R_{k-1}) P_k`` over distinct score thresholds, ties counted together."""
    s, y = _check(scores, labels)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[s[1:] != s[:-1], True]  # last row of each threshold group
    tp = np.cumsum(y)[last].astype(np.float64)
    seen = (np.flatnonzero(last) + 1).astype(np.float64)
    recall = tp / n_pos
    precision = tp / seen
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def logloss(probs: ArrayLike, labels: ArrayLike, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities (clipped to [eps, 1 - eps])."""
    p, y = _check(probs, labels)
    if p.size == 0:
        return float("nan")
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(np.where(y, np.log(p), np.log1p(-p))))


def gauc(scores: ArrayLike, labels: ArrayLike, groups: ArrayLike) -> float:
    """Group AUC: mean of per-group AUC weighted by group size, over groups with both classes."""
    s, y = _check(scores, labels)
    g = np.asarray(groups).ravel()
    if g.shape != s.shape:
        raise ValueError(f"groups ({g.shape[0]}) and scores ({s.shape[0]}) differ in length")
    if s.size == 0:
        return float("nan")
    _, gid = np.unique(g, return_inverse=True)
    order = np.lexsort((s, gid))  # by group, then score
    gs, ss, ys = gid[order], s[order], y[order]
    n = s.size
    pos = np.arange(n)
    new_group = np.r_[True, gs[1:] != gs[:-1]]
    group_start = np.maximum.accumulate(np.where(new_group, pos, 0))
    new_tie = new_group | np.r_[True, ss[1:] != ss[:-1]]
    tie_id = np.cumsum(new_tie) - 1
    tie_start = pos[new_tie]
    tie_end = np.r_[tie_start[1:], n]  # exclusive
    avg_pos = (tie_start + tie_end - 1) / 2.0  # average 0-based position of each tie group
    rank = avg_pos[tie_id] - group_start + 1.0  # 1-based rank within the row's group
    n_groups = int(gs.max()) + 1
    size = np.bincount(gs, minlength=n_groups).astype(np.float64)
    n_pos = np.bincount(gs, weights=ys.astype(np.float64), minlength=n_groups)
    r_pos = np.bincount(gs, weights=np.where(ys, rank, 0.0), minlength=n_groups)
    n_neg = size - n_pos
    ok = (n_pos > 0) & (n_neg > 0)
    if not ok.any():
        return float("nan")
    aucs = (r_pos[ok] - n_pos[ok] * (n_pos[ok] + 1) / 2.0) / (n_pos[ok] * n_neg[ok])
    return float(np.average(aucs, weights=size[ok]))
