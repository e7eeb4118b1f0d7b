# mypy: allow-untyped-defs
"""ES-DFM heads: labels from final rows and event times, pre-training, the module."""

from __future__ import annotations

import pyarrow as pa
import pytest
import torch

from lt4rec.config.feedback import FeedbackConfig
from lt4rec.data.dataset import EncodedDataset
from lt4rec.models.delay_heads import DelayHeads
from lt4rec.testing import random_batch, random_schema
from lt4rec.train.heads_fit import (
    DelayTimes,
    delay_times,
    head_labels,
    heads_report,
    pretrain_heads,
)

SCHEMA = random_schema()
S = 1000  # ms


pytestmark = pytest.mark.usefixtures("one_thread")


def test_head_labels_hand_computed():
    # impressions at t = 0; wait 900 s. Rows: no click; click at 10 s; click at 10 s +
    # conversion at 60 s; click at 10 s + conversion at 2 h; click at 30 min (late).
    times = DelayTimes(
        ts=torch.zeros(5, dtype=torch.int64),
        click_ts=torch.tensor([-1, 10, 10, 10, 1800]) * S,
        conversion_ts=torch.tensor([-1, -1, 60, 7200, -1]) * S,
    )
    click = torch.tensor([0.0, 1, 1, 1, 1])
    conv = torch.tensor([0.0, 0, 1, 1, 0])
    ctr = head_labels(times, click, conv, 900, "ctr")
    assert ctr.rows.tolist() == [True] * 5
    assert ctr.dp.tolist() == [0, 0, 0, 0, 1]
    assert ctr.obs_neg.tolist() == [True, False, False, False, True]
    assert ctr.tn.tolist() == [1, 0, 0, 0, 0]
    cvr = head_labels(times, click, conv, 900, "cvr")
    assert cvr.rows.tolist() == [False, True, True, True, True]
    assert cvr.dp.tolist() == [0, 0, 0, 1, 0]
    assert cvr.obs_neg.tolist() == [False, True, False, True, True]
    assert cvr.tn.tolist() == [1, 1, 0, 0, 1]
    ctcvr = head_labels(times, click, conv, 900, "ctcvr")
    assert ctcvr.rows.all() and ctcvr.dp.tolist() == [0, 0, 0, 1, 0]
    assert ctcvr.obs_neg.tolist() == [True, True, False, True, True]
    # a wait longer than every delay: nothing is delayed
    assert head_labels(times, click, conv, 10_000, "cvr").dp.sum() == 0
    with pytest.raises(ValueError, match="unknown heads target"):
        head_labels(times, click, conv, 900, "gmv")


def test_delay_times_reads_nullable_columns():
    t = pa.table(
        {
            "ts": pa.array([5, 6], pa.int64()),
            "click_ts": pa.array([7, None], pa.int64()),
            "conversion_ts": pa.array([None, None], pa.int64()),
        }
    )
    d = delay_times(t)
    assert d.ts.tolist() == [5, 6] and d.click_ts.tolist() == [7, -1]
    assert d.conversion_ts.tolist() == [-1, -1]
    assert d.take(torch.tensor([1])).ts.tolist() == [6]
    with pytest.raises(ValueError, match="no 'click_ts'"):
        delay_times(t.drop(["click_ts"]))


def synthetic(n, seed):
    """Every row clicked; 40 % convert; the conversion is late (2 h) iff sparse[:, 0] is
    odd, else it comes after 60 s: P(delayed positive | x) is 0.4 or 0."""
    g = torch.Generator().manual_seed(seed)
    b = random_batch(SCHEMA, n, g)
    late = (b.sparse[:, 0] % 2 == 1).long()
    conv = (torch.rand(n, generator=g) < 0.4).float()
    ds = EncodedDataset(b.sparse, b.multi, b.dense, torch.ones(n), conv)
    ts = torch.zeros(n, dtype=torch.int64)
    click_ts = torch.full((n,), 10 * S)
    conv_ts = torch.where(conv > 0, click_ts + torch.where(late > 0, 7200, 60) * S, -1)
    return ds, DelayTimes(ts, click_ts, conv_ts)


def test_pretraining_learns_feature_dependent_delays():
    cfg = FeedbackConfig(heads_epochs=3, heads_batch_size=128, heads_embedding_dim=4,
                         heads_hidden=(16,))  # fmt: skip
    train, times = synthetic(3000, 0)
    heads = pretrain_heads(train, times, SCHEMA, 900, cfg, targets=("cvr",))
    assert heads.targets == ("cvr",) and not heads.training
    test, test_times = synthetic(2000, 1)
    r = heads_report(heads, test, test_times, 900)
    assert r["cvr_dp_auc"] > 0.75 and r["cvr_tn_auc"] > 0.65
    assert r["cvr_dp_mean_pred"] == pytest.approx(r["cvr_dp_rate"], abs=0.05)
    untrained = DelayHeads(SCHEMA, ("cvr",), 4, (16,))
    assert heads_report(untrained, test, test_times, 900)["cvr_dp_auc"] < 0.65
    with pytest.raises(ValueError, match="delay times for"):
        pretrain_heads(train, test_times, SCHEMA, 900, cfg)


def test_heads_module_outputs_and_targets():
    heads = DelayHeads(SCHEMA, ("ctr", "ctcvr"), 4, (8,))
    out = heads(random_batch(SCHEMA, 7))
    assert list(out) == ["ctr_dp", "ctr_tn", "ctcvr_dp", "ctcvr_tn"]
    assert all(v.shape == (7,) for v in out.values())
    p = heads.probs(random_batch(SCHEMA, 7))
    assert all(((v > 0) & (v < 1)).all() for v in p.values())
    for bad in ((), ("ctr", "ctr"), ("gmv",)):
        with pytest.raises(ValueError, match="heads targets"):
            DelayHeads(SCHEMA, bad)
