# mypy: allow-untyped-defs
"""On the real broker: a join that kafka-python 3.0 stops driving is finished by
:func:`streamer.kafka.stranded.finish_stranded_join`, and offsets can be committed again.

The stranding is induced the way it happens in the wild: the leader's metadata snapshot
differs for one short ``poll()`` (which starts a join and leaves it in flight), then agrees
again (so ``need_rejoin()`` is false and no later ``poll()`` drives the join)."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.structs import OffsetAndMetadata

from streamer.kafka.stranded import finish_stranded_join, stranded

pytestmark = [pytest.mark.kafka]


def _joined_consumer(bootstrap: str, topic: str, group: str) -> KafkaConsumer:
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      partition_assignment_strategy=[CooperativeStickyAssignor])  # fmt: skip
    deadline = time.monotonic() + 30
    while len(c.assignment()) < 2 or c._coordinator.rejoining:
        assert time.monotonic() < deadline, "no assignment within 30 s"
        c.poll(timeout_ms=200)
    return c


def _strand(c: KafkaConsumer) -> None:
    co = c._coordinator
    real = co._metadata_snapshot
    co._metadata_snapshot = {t: set() for t in real}  # a metadata answer that differs...
    c.poll(timeout_ms=0)  # ...starts a join that this short poll leaves in flight
    co._metadata_snapshot = real  # ...and the next one agrees again
    assert co.rejoining and not co.need_rejoin()


def _poll_for(c: KafkaConsumer, seconds: float, finish: bool) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and c._coordinator.rejoining:
        c.poll(timeout_ms=50)
        if finish:
            finish_stranded_join(c)


def test_a_stranded_join_is_finished_and_commits_succeed_again(kafka_bootstrap, unique_name):
    topic, group = unique_name("strand"), unique_name("g")
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    c = _joined_consumer(kafka_bootstrap, topic, group)
    try:
        _strand(c)
        _poll_for(c, 3.0, finish=False)  # the client alone: still rebalancing, for good
        assert stranded(c)
        commit = {TopicPartition(topic, 0): OffsetAndMetadata(0, "", -1)}
        with pytest.raises(Exception, match="RebalanceInProgress"):
            c.commit(commit)
        _poll_for(c, 10.0, finish=True)  # with the workaround: the join completes
        assert not stranded(c) and not c._coordinator.rejoining
        c.commit(commit)
        assert c.committed(TopicPartition(topic, 0)) == 0
        assert len(c.assignment()) == 2
    finally:
        c.close()


def test_a_consumer_without_a_coordinator_is_left_alone() -> None:
    class Bare:
        pass

    assert not stranded(Bare()) and not finish_stranded_join(Bare())
