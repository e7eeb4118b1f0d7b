# mypy: allow-untyped-defs
"""The rolling window equals the exact metrics of its last W rows, however rows arrive."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lt4rec.metrics import RollingWindow, auc, logloss


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(1, 40),
    chunks=st.lists(st.integers(0, 25), min_size=1, max_size=12),
    seed=st.integers(0, 10_000),
)
def test_window_holds_exactly_the_newest_rows_in_order(size, chunks, seed):
    rng = np.random.default_rng(seed)
    total = sum(chunks)
    p = rng.integers(0, 5, total) / 4.0  # ties on purpose
    y = (rng.random(total) < 0.4).astype(float)
    w = RollingWindow(size)
    start = 0
    for n in chunks:
        w.add(p[start : start + n], y[start : start + n])
        start += n
    wp, wy = w.arrays()
    keep = slice(max(0, total - size), total)
    np.testing.assert_array_equal(wp, p[keep])
    np.testing.assert_array_equal(wy, y[keep])
    assert len(w) == min(size, total) and w.seen == total
    a, b = w.auc(), auc(p[keep], y[keep])
    assert (math.isnan(a) and math.isnan(b)) or a == b


def test_metrics_of_a_known_window():
    w = RollingWindow(4)
    w.add([0.9, 0.1], [1, 0])
    w.add([0.8, 0.3, 0.2], [0, 1, 0])  # 0.9/1 falls out
    p, y = np.array([0.1, 0.8, 0.3, 0.2]), np.array([0, 0, 1, 0])
    assert w.auc() == pytest.approx(2 / 3)
    assert w.logloss() == pytest.approx(logloss(p, y))
    assert w.calibration() == pytest.approx(p.sum() / 1.0)
    assert math.isnan(RollingWindow(3).calibration())


def test_state_round_trip_continues_the_same_window():
    rng = np.random.default_rng(1)
    a = RollingWindow(50)
    a.add(rng.random(70), rng.random(70) < 0.3)
    b = RollingWindow.from_state(50, *a.state())
    extra_p, extra_y = rng.random(13), rng.random(13) < 0.3
    a.add(extra_p, extra_y)
    b.add(extra_p, extra_y)
    np.testing.assert_array_equal(a.arrays()[0], b.arrays()[0])
    assert a.seen == b.seen == 83


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=">= 1"):
        RollingWindow(0)
    with pytest.raises(ValueError, match="length"):
        RollingWindow(3).add([0.1, 0.2], [1])
