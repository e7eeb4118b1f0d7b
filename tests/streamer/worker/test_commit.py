"""Step 5 of the worker's commit order: the final synchronous commit always carries the
newest durable offsets, even when the asynchronous commit of the same checkpoint was lost."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from kafka import TopicPartition

from streamer.worker.commit import COMMIT_ATTEMPTS, commit_offsets, owned_offsets
from streamer.worker.daemon import WorkerDaemon


class FlakyConsumer:
    """Drops every asynchronous commit; refuses the first ``refusals`` synchronous ones."""

    def __init__(self, refusals: int = 0) -> None:
        self.refusals = refusals
        self.asynchronous: list[dict] = []
        self.acknowledged: dict[TopicPartition, int] = {}

    def commit_async(self, offsets: dict) -> None:
        self.asynchronous.append(offsets)  # lost: never reaches the broker

    def commit(self, offsets: dict) -> None:
        if self.refusals > 0:
            self.refusals -= 1
            raise RuntimeError("RebalanceInProgressError")
        self.acknowledged.update({tp: om.offset for tp, om in offsets.items()})


def test_only_owned_partitions_are_committed() -> None:
    req = owned_offsets("ex", {0: 5, 1: 7, 2: 9}, owned={0, 2})
    assert {tp.partition: om.offset for tp, om in req.items()} == {0: 5, 2: 9}
    assert all(tp.topic == "ex" for tp in req)


def test_a_refused_sync_commit_settles_the_group_and_retries() -> None:
    req = owned_offsets("ex", {0: 5}, owned={0})
    c = FlakyConsumer(refusals=COMMIT_ATTEMPTS - 1)
    settled: list[int] = []
    assert commit_offsets(c, req, sync=True, settle=lambda: settled.append(1))
    assert c.acknowledged == {TopicPartition("ex", 0): 5} and len(settled) == COMMIT_ATTEMPTS - 1


def test_a_hopeless_sync_commit_and_a_failing_settle_do_not_raise() -> None:
    req = owned_offsets("ex", {0: 5}, owned={0})
    c = FlakyConsumer(refusals=COMMIT_ATTEMPTS)

    def settle() -> None:
        raise RuntimeError("broker away")

    assert not commit_offsets(c, req, sync=True, settle=settle) and c.acknowledged == {}
    assert not commit_offsets(c, {}, sync=True)


def _daemon(consumer: FlakyConsumer, durable: dict[int, int]) -> WorkerDaemon:
    handed: list[dict[int, int] | None] = [dict(durable)]

    def take() -> dict[int, int] | None:
        out, handed[0] = handed[0], None
        return out

    d = object.__new__(WorkerDaemon)
    d.cfg = SimpleNamespace(topics=SimpleNamespace(examples="ex"))
    d.consumer = consumer
    d._owned = set(durable)
    d._lock = threading.RLock()
    d._settle = lambda: None
    d.trainer = SimpleNamespace(take_commit=take, durable_offsets=lambda: dict(durable))
    return d


def test_the_final_commit_resends_offsets_whose_async_commit_was_lost() -> None:
    c = FlakyConsumer()
    d = _daemon(c, {0: 876, 1: 876})
    d._commit()  # a polling round: handed over, sent asynchronously, lost
    assert len(c.asynchronous) == 1 and c.acknowledged == {}
    d._commit(sync=True)  # nothing new was handed over since: still committed
    assert {tp.partition: o for tp, o in c.acknowledged.items()} == {0: 876, 1: 876}
