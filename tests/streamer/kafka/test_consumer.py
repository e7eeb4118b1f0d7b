"""Rebalance listener forwarding and consumer lag on the real broker."""

from __future__ import annotations

import pytest
from kafka import KafkaProducer, TopicPartition

from lt4rec.config import KafkaConfig
from streamer.kafka.admin import ensure_topics
from streamer.kafka.consumer import JoinRebalanceListener, consumer_lag, make_consumer
from tests.streamer.topics import topics_under


class Owner:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def on_revoked(self, partitions):
        self.calls.append(("revoked", partitions))

    def on_lost(self, partitions):
        self.calls.append(("lost", partitions))

    def on_assigned(self, assigned):
        self.calls.append(("assigned", assigned))


class Pauses:
    def __init__(self) -> None:
        self.paused: set[TopicPartition] = set()

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)


def test_listener_maps_topic_partitions_to_join_partitions() -> None:
    owner, consumer = Owner(), Pauses()
    listener = JoinRebalanceListener(owner, consumer)
    tps = {TopicPartition("a", 0), TopicPartition("b", 0), TopicPartition("a", 2)}
    listener.on_partitions_revoked(tps)
    listener.on_partitions_revoked(set())  # nothing owned: not forwarded
    listener.on_partitions_lost({TopicPartition("a", 1)})
    assert consumer.paused == set()
    listener.on_partitions_assigned(tps)
    assert owner.calls == [("revoked", {0, 2}), ("lost", {1}), ("assigned", tps)]
    assert consumer.paused == tps  # nothing is fetched before the polling thread claims it


@pytest.mark.kafka
def test_range_assignment_gives_every_input_topic_and_lag(kafka_bootstrap, unique_name):
    base = unique_name("con")
    kafka = KafkaConfig(
        bootstrap=kafka_bootstrap,
        group_id=f"{base}.g",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    topics = topics_under(base, partitions=2)
    ensure_topics(kafka, topics)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i in range(10):
        producer.send(topics.clicks, value=b"x", partition=i % 2)
    producer.flush()
    producer.close()

    owner = Owner()
    consumer = make_consumer(kafka, topics, owner)
    try:
        for _ in range(50):
            consumer.poll(timeout_ms=200, max_records=1)
            if any(c[0] == "assigned" for c in owner.calls):
                break
        assigned = next(c[1] for c in owner.calls if c[0] == "assigned")
        assert assigned == {TopicPartition(t, p) for t in topics.inputs for p in range(2)}
        lag = consumer_lag(consumer, consumer.assignment())
        assert sum(lag.values()) >= 9  # at most one record polled so far
        assert lag[(topics.impressions, 0)] == 0
    finally:
        consumer.close(autocommit=False)
