"""The worker's join watchdog: a join without assignment is retried, an outage is not a stall.

kafka-python can drop a SyncGroup answer that arrives while no ``poll()`` awaits it and then
wait forever with no partitions (streamer.rebalance); the worker must notice and re-join.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest

from lt4rec.config import AppConfig
from streamer.worker.daemon import WorkerDaemon
from streamer.worker.metrics import WorkerMetrics


class FakeConsumer:
    def __init__(self, answers: bool = True) -> None:
        self.answers = answers

    def topics(self) -> set[str]:
        if not self.answers:
            raise TimeoutError("broker away")
        return {"t"}


def bare_daemon(timeout_s: float = 10.0, retries: int = 2) -> WorkerDaemon:
    """Only what :meth:`WorkerDaemon._stalled` reads."""
    cfg = AppConfig()
    cfg = replace(cfg, kafka=replace(cfg.kafka, rebalance_timeout_s=timeout_s,
                                     rebalance_retries=retries))  # fmt: skip
    d = object.__new__(WorkerDaemon)
    d.cfg = cfg
    d.metrics = WorkerMetrics(cfg.metrics)
    d.consumer = FakeConsumer()
    d._waiting_since = None
    d._stalls = 0
    return d


def test_an_assigned_worker_never_stalls() -> None:
    d = bare_daemon()
    assert not d._stalled()


def test_a_join_waiting_past_the_timeout_is_retried_then_fails() -> None:
    d = bare_daemon(timeout_s=10.0, retries=2)
    d._waiting_since = time.monotonic() - 5.0
    assert not d._stalled()  # still within the timeout
    d._waiting_since = time.monotonic() - 11.0
    assert d._stalled() and d._stalls == 1
    assert d._stalled() and d._stalls == 2
    with pytest.raises(RuntimeError, match="no partition assignment after 2 re-joins"):
        d._stalled()


def test_an_unreachable_broker_restarts_the_clock_instead() -> None:
    d = bare_daemon(timeout_s=10.0)
    d.consumer = FakeConsumer(answers=False)
    d._waiting_since = time.monotonic() - 11.0
    assert not d._stalled() and d._stalls == 0
    assert time.monotonic() - d._waiting_since < 1.0


def test_an_assignment_resets_the_watchdog() -> None:
    d = bare_daemon()
    d._waiting_since, d._stalls = time.monotonic() - 100.0, 1
    d._lock = threading.RLock()
    d._owned = set()
    d.trainer = SimpleNamespace(trained_position=lambda p: (None, None))
    d.batcher = SimpleNamespace(assign=lambda p, marks: None)
    d.consumer = SimpleNamespace(seek_to_beginning=lambda tp: None, topics=lambda: {"t"})
    d.on_assigned(set())
    assert d._waiting_since is None and d._stalls == 0 and d._joined
