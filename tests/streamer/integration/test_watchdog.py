"""The rebalance watchdog on the real broker: an assignment that never arrives (what the
reported hang looked like: SyncGroup answered, ``partitions=[]`` forever) is reported — log,
``lt4rec_joiner_retries_total{cause="rebalance_stall"}``, ``lt4rec_joiner_status`` 1 — and
retried with a fresh consumer; after ``kafka.rebalance_retries`` retries the daemon stops
with :class:`RebalanceStalled` (exit status 3 from the CLI)."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

import streamer.daemon
from streamer.daemon import DaemonOptions, JoinerDaemon, RebalanceStalled
from streamer.kafka.admin import ensure_topics
from streamer.replay import replay
from tests.streamer.integration.streamer_it_support import (
    LABEL_COLS,
    archive_frame,
    expected_labels,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


class LosesAssignments:
    """Owner proxy of a stuck consumer: it never hears of an assignment (as if the SyncGroup
    result was dropped inside the client); ``statuses`` gets the daemon's status each time a
    healthy consumer's assignment arrives."""

    def __init__(self, owner, stuck: bool, statuses: list[float], metrics) -> None:
        self.owner, self.stuck, self.statuses, self.metrics = owner, stuck, statuses, metrics

    def on_revoked(self, partitions):
        self.owner.on_revoked(partitions)

    def on_lost(self, partitions):
        self.owner.on_lost(partitions)

    def on_assigned(self, assigned):
        if not self.stuck:
            self.statuses.append(self.metrics.status._value.get())
            self.owner.on_assigned(assigned)


def _daemon(env, monkeypatch, stuck: int, statuses: list[float]) -> JoinerDaemon:
    """A daemon whose first ``stuck`` consumers never get their assignment."""
    daemon = JoinerDaemon(env.cfg, DaemonOptions(exit_when_idle_s=3.0, flush_at_end=True))
    real, made = streamer.daemon.make_consumer, []

    def make(kafka, topics, owner):
        made.append(1)
        proxy = LosesAssignments(owner, len(made) <= stuck, statuses, daemon.metrics)
        return real(kafka, topics, proxy)

    monkeypatch.setattr(streamer.daemon, "make_consumer", make)
    return daemon


def _retries(daemon: JoinerDaemon) -> float:
    return daemon.metrics.retries.labels(cause="rebalance_stall")._value.get()


def test_a_lost_assignment_is_reported_and_retried(
    stream_env, sim_dir, sim_events, monkeypatch, caplog
):
    env = stream_env(kafka={"rebalance_timeout_s": 3.0, "rebalance_retries": 2})
    ensure_topics(env.cfg.kafka, env.cfg.topics)
    replay(sim_events, env.cfg.kafka, env.cfg.topics)
    statuses: list[float] = []
    daemon = _daemon(env, monkeypatch, stuck=1, statuses=statuses)
    with caplog.at_level(logging.ERROR, logger="streamer"):
        summary = daemon.run()
    assert "no partition assignment for" in caplog.text and "fresh consumer" in caplog.text
    assert _retries(daemon) == 1 and statuses[0] == 1  # reported as status 1 until it worked
    assert daemon.metrics.status._value.get() == 0 and daemon.watchdog.stalls == 0
    assert summary.records == len(sim_events)
    want = expected_labels(sim_dir, env.cfg.joiner)
    pd.testing.assert_frame_equal(archive_frame(env.archive, LABEL_COLS), want, check_dtype=False)


def test_assignments_that_never_arrive_stop_the_daemon_after_the_retries(stream_env, monkeypatch):
    env = stream_env(kafka={"rebalance_timeout_s": 2.0, "rebalance_retries": 1})
    ensure_topics(env.cfg.kafka, env.cfg.topics)
    daemon = _daemon(env, monkeypatch, stuck=10**6, statuses=[])
    with pytest.raises(RebalanceStalled, match="no partition assignment after 1 re-joins"):
        daemon.run()
    assert _retries(daemon) == 2
