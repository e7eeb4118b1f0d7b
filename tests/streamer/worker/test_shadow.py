"""Online publishing gate: shadow scores of the version in service vs the worker's model."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lt4rec.config import AppConfig
from lt4rec.metrics import auc
from streamer.worker.metrics import WorkerMetrics
from streamer.worker.shadow import Champion, ScoreWindow, ShadowPublisher


def test_the_window_keeps_the_last_rows_only():
    w = ScoreWindow(size=5)
    rng = np.random.default_rng(1)
    champ, cand, ys = rng.random(12), rng.random(12), np.tile([1.0, 0.0, 1.0], 4)
    for k in range(4):  # four chunks of 3 rows
        sl = slice(3 * k, 3 * k + 3)
        w.add(champ[sl], cand[sl], ys[sl])
    assert 5 <= w.rows < 5 + 3  # whole chunks are dropped once the rest covers the window
    assert w.aucs() == (auc(champ[-5:], ys[-5:]), auc(cand[-5:], ys[-5:]))
    assert w.aucs() != (auc(champ, ys), auc(cand, ys))  # older rows do not count


def test_one_class_gives_no_auc():
    w = ScoreWindow(10)
    w.add(np.zeros(4), np.ones(4), np.zeros(4))
    assert all(np.isnan(v) for v in w.aucs())


class FakeRegistry:
    def __init__(self, current: int | None) -> None:
        self.version = current

    def current(self):
        if self.version is None:
            return None
        return SimpleNamespace(version=SimpleNamespace(version=self.version))


def publisher(every_s=0.001, min_rows=10, eps=0.0, current=7):
    cfg = AppConfig()
    cfg = replace(cfg, publish=replace(cfg.publish, online_every_s=every_s,
                                       online_min_rows=min_rows, online_eps=eps))  # fmt: skip
    sent: list[tuple[int, str]] = []
    pub = ShadowPublisher(
        cfg, FakeRegistry(current), WorkerMetrics(cfg.metrics), lambda v, why: sent.append((v, why))
    )  # type: ignore[arg-type,return-value]
    holder = SimpleNamespace(model=torch.nn.Linear(2, 1), encoder=object())
    pub.champion = Champion(torch.nn.Linear(2, 1), holder.encoder, 7)  # type: ignore[arg-type]
    pub.champion_version = 7
    pub.last_attempt -= 1.0  # due unless every_s is long
    return pub, holder, sent


def fill(pub, champ_good: bool, n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    good = y + rng.normal(0, 0.5, n)  # informative
    bad = rng.normal(0, 1, n)  # noise
    for t in ("ctr", "cvr"):
        pub.windows[t].add(good if champ_good else bad, bad if champ_good else good, y)


@pytest.mark.parametrize("champ_good", [False, True])
def test_publishes_only_a_candidate_no_worse_than_the_version_in_service(champ_good):
    pub, holder, sent = publisher()
    fill(pub, champ_good)
    pub.on_checkpoint(SimpleNamespace(version=12), holder)  # type: ignore[arg-type]
    if champ_good:
        assert sent == [] and pub.champion_version == 7  # kept: the window goes on
        assert pub.windows["ctr"].rows == 200
    else:
        ((version, why),) = sent
        assert version == 12 and "ctr AUC" in why and "cvr AUC" in why
        assert pub.champion_version == 12 and pub.windows["ctr"].rows == 0  # a new champion
        assert pub.champion is not None and pub.champion.model is not holder.model


def test_too_few_rows_or_not_due_publishes_nothing():
    pub, holder, sent = publisher(every_s=3600.0, min_rows=10)
    fill(pub, champ_good=False)
    pub.on_checkpoint(SimpleNamespace(version=12), holder)  # type: ignore[arg-type]
    assert sent == []  # not due yet
    pub, holder, sent = publisher(min_rows=10_000)
    fill(pub, champ_good=False)
    pub.on_checkpoint(SimpleNamespace(version=12), holder)  # type: ignore[arg-type]
    assert sent == []  # 200 rows compared < online_min_rows


def test_eps_tolerates_a_small_loss():
    pub, holder, sent = publisher(eps=1.0)
    fill(pub, champ_good=True)
    pub.on_checkpoint(SimpleNamespace(version=12), holder)  # type: ignore[arg-type]
    assert [v for v, _ in sent] == [12]


def test_nothing_in_service_publishes_the_first_online_version():
    pub, holder, sent = publisher(current=None)
    pub.on_checkpoint(SimpleNamespace(version=3), holder)  # type: ignore[arg-type]
    assert [v for v, _ in sent] == [3]
