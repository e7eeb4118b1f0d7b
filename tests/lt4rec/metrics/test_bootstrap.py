# mypy: allow-untyped-defs
"""Weighted AUC and the paired bootstrap of an AUC difference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lt4rec.metrics.bootstrap import paired_bootstrap, pooled_paired_bootstrap, weighted_auc
from lt4rec.metrics.ranking import auc


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.booleans(), st.integers(0, 3)), min_size=2, max_size=40
    )
)
def test_integer_weights_equal_repeated_rows(rows):
    s = np.array([r[0] for r in rows], dtype=float)  # few distinct values: many ties
    y = np.array([r[1] for r in rows])
    w = np.array([r[2] for r in rows])
    want = auc(np.repeat(s, w), np.repeat(y, w))
    got = weighted_auc(s, y, w)
    assert (np.isnan(want) and np.isnan(got)) or got == pytest.approx(want, abs=1e-12)


def test_paired_bootstrap_sees_a_real_difference_and_no_difference():
    rng = np.random.default_rng(0)
    y = rng.random(4000) < 0.2
    noise = rng.random(4000)
    good = noise + 0.6 * y
    bad = noise + 0.3 * y + 0.2 * rng.random(4000)
    d = paired_bootstrap(good, bad, y, n_boot=200, seed=1)
    assert d.diff == pytest.approx(auc(good, y) - auc(bad, y))
    assert d.ci_low > 0 and d.p_not_above == 0.0 and d.rows == 4000
    same = paired_bootstrap(good, good, y, n_boot=50)
    assert same.diff == 0.0 and same.std == 0.0 and same.p_not_above == 1.0
    # a margin larger than the difference is not cleared
    assert paired_bootstrap(good, bad, y, n_boot=100, margin=1.0).p_not_above == 1.0


def test_paired_bootstrap_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap([0.1, 0.2], [0.3], [0, 1])


def test_pooled_bootstrap_is_the_mean_of_the_per_run_differences_on_shared_resamples():
    rng = np.random.default_rng(2)
    y = rng.random(3000) < 0.2
    runs_a = [rng.random(3000) + 0.5 * y for _ in range(3)]
    runs_b = [rng.random(3000) + 0.4 * y for _ in range(3)]
    d = pooled_paired_bootstrap(runs_a, runs_b, y, n_boot=200, seed=4)
    per_run = [auc(a, y) - auc(b, y) for a, b in zip(runs_a, runs_b, strict=True)]
    assert d.diff == pytest.approx(np.mean(per_run), abs=1e-12)
    assert d.ci_low <= d.diff <= d.ci_high
    # averaging three independent runs is tighter than any single run's bootstrap
    pairs = zip(runs_a, runs_b, strict=True)
    single = [paired_bootstrap(a, b, y, n_boot=200, seed=4).std for a, b in pairs]
    assert d.std < min(single)
    # one pair: exactly the plain paired bootstrap (same resamples)
    one = pooled_paired_bootstrap(runs_a[:1], runs_b[:1], y, n_boot=50, seed=7)
    assert one == paired_bootstrap(runs_a[0], runs_b[0], y, n_boot=50, seed=7)


def test_pooled_bootstrap_rejects_unequal_run_counts():
    with pytest.raises(ValueError, match="as many runs"):
        pooled_paired_bootstrap([[0.1, 0.2]], [], [0, 1])
