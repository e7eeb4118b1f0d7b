# mypy: allow-untyped-defs
"""AUC / logloss / GAUC against scikit-learn and brute force."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lt4rec.metrics import auc, gauc, logloss
from lt4rec.metrics.evaluate import evaluate_predictions, oracle_metrics


def brute_auc(s: np.ndarray, y: np.ndarray) -> float:
    pos, neg = s[y > 0], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=60).filter(
        lambda r: any(b for _, b in r) and not all(b for _, b in r)
    )
)
def test_auc_matches_brute_force_with_ties(rows):
    s = np.array([float(a) for a, _ in rows])  # few distinct values: many ties
    y = np.array([int(b) for _, b in rows])
    assert auc(s, y) == pytest.approx(brute_auc(s, y), abs=1e-12)


def test_auc_undefined_for_one_class():
    assert math.isnan(auc([0.1, 0.2], [1, 1]))
    assert math.isnan(auc([], []))


def test_auc_rejects_bad_input():
    with pytest.raises(ValueError, match="length"):
        auc([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="NaN"):
        auc([float("nan"), 0.2], [1, 0])


def test_auc_fast_on_a_million_rows():
    rng = np.random.default_rng(0)
    y = rng.random(1_000_000) < 0.05
    s = rng.random(1_000_000).round(3) + y * 0.1
    t = time.perf_counter()
    a = auc(s, y)
    assert time.perf_counter() - t < 10.0  # ~0.3 s alone; generous for a shared CPU
    # independent exact computation by counting per distinct score
    vals, inv = np.unique(s, return_inverse=True)
    pos = np.bincount(inv, weights=y, minlength=vals.size)
    neg = np.bincount(inv, weights=~y, minlength=vals.size)
    neg_below = np.cumsum(neg) - neg
    expected = float((pos * neg_below + 0.5 * pos * neg).sum() / (pos.sum() * neg.sum()))
    assert a == pytest.approx(expected, abs=1e-9)


def test_logloss_is_mean_cross_entropy_and_clipped():
    p = np.array([0.9, 0.2, 0.5])
    y = np.array([1, 0, 1])
    expected = -(np.log(0.9) + np.log(0.8) + np.log(0.5)) / 3
    assert logloss(p, y) == pytest.approx(expected, rel=1e-12)
    assert math.isfinite(logloss([0.0, 1.0], [1, 0]))  # clipped, not inf


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_gauc_is_size_weighted_mean_of_per_user_auc(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 80))
    users = rng.integers(0, 6, n)
    s = rng.integers(0, 4, n).astype(float)
    y = rng.random(n) < 0.4
    num = den = 0.0
    for u in np.unique(users):
        m = users == u
        if y[m].any() and (~y[m]).any():
            num += m.sum() * brute_auc(s[m], y[m])
            den += m.sum()
    got = gauc(s, y, users)
    if den == 0:
        assert math.isnan(got)
    else:
        assert got == pytest.approx(num / den, abs=1e-12)


def test_evaluate_predictions_uses_clicked_rows_for_cvr():
    p_ctr = np.array([0.9, 0.8, 0.1, 0.2])
    p_cvr = np.array([0.9, 0.1, 0.99, 0.0])
    click = np.array([1, 1, 0, 0])
    conv = np.array([1, 0, 0, 0])
    m = evaluate_predictions(p_ctr, p_cvr, click, conv, user=np.array([0, 1, 0, 1]))
    assert m["ctr_auc"] == 1.0
    assert m["cvr_auc"] == 1.0  # row 2's high pCVR is ignored (not clicked)
    assert m["ctcvr_auc"] == 1.0
    assert m["ctr_gauc"] == pytest.approx(1.0)
    o = oracle_metrics(p_ctr, p_cvr, click, conv)
    assert o["oracle_ctr_auc"] == 1.0
