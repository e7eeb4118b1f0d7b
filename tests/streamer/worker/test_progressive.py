# mypy: allow-untyped-defs
"""Progressive metrics: exact rolling AUC / logloss, river agrees, ADWIN sees a shift."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from river import metrics, utils

from lt4rec.metrics import auc
from streamer.worker.progressive import ProgressiveMetrics


def _rows(rng, n, shift=0.0):
    y = (rng.random(n) < 0.2).astype(np.float64)
    p = np.clip(0.2 + 0.3 * (y - 0.2) + shift + 0.05 * rng.standard_normal(n), 0.01, 0.99)
    return torch.from_numpy(p), torch.from_numpy(y)


def test_window_metrics_are_exact_and_river_agrees_on_logloss():
    rng = np.random.default_rng(0)
    pm = ProgressiveMetrics(window=500, delta=0.002)
    river_ll = utils.Rolling(metrics.LogLoss, window_size=500)
    ps, ys = [], []
    for _ in range(9):
        p, y = _rows(rng, 128)
        pm.add({"ctr": (p, y)})
        ps.append(p.numpy())
        ys.append(y.numpy())
        for yi, pi in zip(y.tolist(), p.tolist(), strict=True):
            river_ll.update(yi > 0.5, pi)
    snap = pm.snapshot()
    p_all, y_all = np.concatenate(ps)[-500:], np.concatenate(ys)[-500:]
    assert snap["ctr_auc"] == auc(p_all, y_all)
    assert snap["ctr_logloss"] == pytest.approx(river_ll.get(), rel=1e-9)
    assert snap["ctr_calibration"] == pytest.approx(p_all.sum() / y_all.sum())
    assert snap["ctr_window_rows"] == 500 and snap["ctr_scored"] == 9 * 128
    assert np.isnan(snap["cvr_auc"])  # no CVR rows yet


def test_adwin_detects_a_jump_of_the_loss_and_state_survives_a_restore():
    rng = np.random.default_rng(1)
    pm = ProgressiveMetrics(window=2000, delta=0.002)
    drifted = []
    for _ in range(20):
        drifted += pm.add({"ctr": _rows(rng, 100)})
    assert drifted == []  # a stationary stream: no alarm
    for _ in range(10):  # the model suddenly predicts far too high: the loss jumps
        drifted += pm.add({"ctr": _rows(rng, 100, shift=0.6)})
    assert "ctr" in drifted and pm.snapshot()["ctr_drifts"] >= 1
    again = ProgressiveMetrics(window=2000, delta=0.002)
    again.restore(pm.aux(), pm.counts())
    assert again.snapshot()["ctr_auc"] == pm.snapshot()["ctr_auc"]
    assert again.snapshot()["ctr_drifts"] == pm.snapshot()["ctr_drifts"]
