"""Paired bootstrap of an AUC difference between two models scored on the same rows.

Deciding "model A beats model B" from one test split needs the split's own noise: resample
the test rows with replacement, score both models on the SAME resample, and look at the
distribution of ``AUC_A - AUC_B``. Pairing removes the (large) variance the two models share
(which rows happen to be hard), so it is far tighter than comparing two independent CIs.

A resample is a vector of row counts; AUC with integer row weights is computed
in O(n) from tie groups found once (:class:`_Ranked`), so 1,000 resamples of 100k rows take
seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


class _Ranked:
    """One model's scores split into tie groups (ascending), for weighted AUCs."""

    def __init__(self, scores: np.ndarray, positive: np.ndarray) -> None:
        _, self.group = np.unique(scores, return_inverse=True)  # [n] tie-group index
        self.n_groups = int(self.group.max()) + 1 if scores.size else 0
        self.positive = positive

    def auc(self, weights: np.ndarray) -> float:
        """AUC where row i counts ``weights[i]`` times (ties: half)."""
        pos = np.bincount(self.group, weights * self.positive, self.n_groups)  # [G]
        neg = np.bincount(self.group, weights * ~self.positive, self.n_groups)  # [G]
        n_pos, n_neg = float(pos.sum()), float(neg.sum())
        if n_pos == 0 or n_neg == 0:
            return float("nan")
        below = np.cumsum(neg) - neg  # negatives strictly below each group
        return float((pos * (below + 0.5 * neg)).sum() / (n_pos * n_neg))


@dataclass(frozen=True)
class PairedDiff:
    """``AUC_A - AUC_B`` on the full rows and over the bootstrap resamples."""

    diff: float  # on the full rows
    mean: float
    std: float
    ci_low: float  # 2.5 % quantile
    ci_high: float  # 97.5 % quantile
    p_not_above: float  # fraction of resamples with diff <= margin (one-sided p-value)
    margin: float
    n_boot: int
    rows: int


def weighted_auc(scores: ArrayLike, labels: ArrayLike, weights: ArrayLike) -> float:
    """ROC AUC with non-negative row weights (integer weights = repeated rows)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel() > 0.5
    return _Ranked(s, y).auc(np.asarray(weights, dtype=np.float64).ravel())


def paired_bootstrap(
    scores_a: ArrayLike,
    scores_b: ArrayLike,
    labels: ArrayLike,
    n_boot: int = 1000,
    seed: int = 0,
    margin: float = 0.0,
) -> PairedDiff:
    """Paired bootstrap of ``AUC(scores_a) - AUC(scores_b)`` over the rows of ``labels``."""
    return pooled_paired_bootstrap([scores_a], [scores_b], labels, n_boot, seed, margin)


def pooled_paired_bootstrap(
    scores_a: Sequence[ArrayLike],
    scores_b: Sequence[ArrayLike],
    labels: ArrayLike,
    n_boot: int = 1000,
    seed: int = 0,
    margin: float = 0.0,
) -> PairedDiff:
    """Paired bootstrap of the MEAN over k runs of ``AUC(a_j) - AUC(b_j)``, all k pairs
    scored on the same rows (e.g. k model seeds on one test split): every resample of the
    rows is applied to every pair, so the spread is the test split's noise of the mean
    difference, with the seeds' own spread in the point estimate."""
    if len(scores_a) != len(scores_b) or not scores_a:
        raise ValueError(f"need as many runs of A as of B, >= 1 ({len(scores_a)}, {len(scores_b)})")
    y = np.asarray(labels).ravel() > 0.5
    pairs = []
    for sa, sb in zip(scores_a, scores_b, strict=True):
        a = np.asarray(sa, dtype=np.float64).ravel()
        b = np.asarray(sb, dtype=np.float64).ravel()
        if not a.shape == b.shape == y.shape:
            raise ValueError(f"scores ({a.size}, {b.size}) and labels ({y.size}) differ in length")
        pairs.append((_Ranked(a, y), _Ranked(b, y)))

    def mean_diff(w: np.ndarray) -> float:
        return float(np.mean([ra.auc(w) - rb.auc(w) for ra, rb in pairs]))

    full = mean_diff(np.ones(y.size))
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        w = np.bincount(rng.integers(0, y.size, y.size), minlength=y.size).astype(np.float64)
        diffs[i] = mean_diff(w)
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    return PairedDiff(
        diff=full,
        mean=float(diffs.mean()),
        std=float(diffs.std(ddof=1)) if n_boot > 1 else 0.0,
        ci_low=float(lo),
        ci_high=float(hi),
        p_not_above=float((diffs <= margin).mean()),
        margin=margin,
        n_boot=n_boot,
        rows=int(y.size),
    )
