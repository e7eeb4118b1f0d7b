"""The joiner's group consumer and its rebalance listener (kafka-python 3.x).

* Manual commits only (the state store is the source of truth for offsets).
* :class:`RangePartitionAssignor` so that a member gets the same partition index ``p`` of
  every input topic (the topics are co-partitioned); ``p`` is one join partition.
* kafka-python 3.x runs rebalance callbacks on the consumer's IO thread while the caller of
  ``poll()`` waits: blocking work there stalls the client's event loop (heartbeats, the group
  protocol). The listener therefore only pauses newly assigned topic-partitions (a local
  call) and forwards to a :class:`PartitionOwner` that records the change without blocking
  (:class:`streamer.rebalance.Rebalances`); the polling thread does the work after ``poll()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.range import RangePartitionAssignor

from lt4rec.config import KafkaConfig, TopicsConfig

log = logging.getLogger(__name__)


class PartitionOwner(Protocol):
    """What the listener calls (on the IO thread: record, never block); join partitions
    are partition indices ``p``."""

    def on_revoked(self, partitions: set[int]) -> None:
        """To drain and release: we still own them (clean hand-over)."""

    def on_lost(self, partitions: set[int]) -> None:
        """To forget: another member may already own them (forced eviction)."""

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """To claim (complete partitions), seek and resume; they arrive paused."""


def join_partitions(tps: Iterable[TopicPartition]) -> set[int]:
    return {tp.partition for tp in tps}


class JoinRebalanceListener(ConsumerRebalanceListener):
    """Forwards rebalance events to the owner; pauses what is assigned until it is claimed
    (``pause_assigned``; the worker, which seeks in its callback, does not pause)."""

    def __init__(self, owner: PartitionOwner, consumer: Any, pause_assigned: bool = True) -> None:
        self.owner = owner
        self.pause_assigned = pause_assigned
        self.consumer = consumer

    def on_partitions_revoked(self, revoked: Any) -> None:
        ps = join_partitions(revoked)
        log.info("partitions revoked: %s", sorted(ps))
        if ps:
            self.owner.on_revoked(ps)

    def on_partitions_lost(self, lost: Any) -> None:
        ps = join_partitions(lost)
        log.info("partitions lost: %s", sorted(ps))
        if ps:
            self.owner.on_lost(ps)

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned: %s", sorted(join_partitions(assigned)))
        if assigned and self.pause_assigned:
            self.consumer.pause(*assigned)  # local: nothing is fetched before the claim
        self.owner.on_assigned(set(assigned))


def group_consumer(
    kafka: KafkaConfig, group_id: str, client_id: str, assignor: Any, topics: list[str],
    make_listener: Callable[[Any], ConsumerRebalanceListener],
    group_instance_id: str | None = None,
) -> Any:  # fmt: skip
    """A manually committing group consumer of ``topics`` with the listener
    ``make_listener(consumer)`` attached (``group_instance_id``: static membership, KIP-345)."""
    consumer = KafkaConsumer(
        group_instance_id=group_instance_id,
        bootstrap_servers=kafka.bootstrap,
        group_id=group_id,
        client_id=client_id,
        bootstrap_timeout_ms=kafka.bootstrap_timeout_ms,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        partition_assignment_strategy=[assignor],
        max_poll_records=kafka.max_poll_records,
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=kafka.heartbeat_interval_ms,
        max_poll_interval_ms=kafka.max_poll_interval_ms,
        max_partition_fetch_bytes=max(1_048_576, kafka.max_message_bytes + 65_536),
        allow_auto_create_topics=False,
        check_crcs=kafka.check_crcs,
    )
    for topic in topics:  # metadata first: else the first assignment can be empty
        consumer.partitions_for_topic(topic)
    consumer.subscribe(topics=topics, listener=make_listener(consumer))
    return consumer


def make_consumer(
    kafka: KafkaConfig, topics: TopicsConfig, owner: PartitionOwner, client_suffix: str = ""
) -> Any:
    """A group consumer subscribed to the three input topics with the listener attached."""
    return group_consumer(
        kafka, kafka.group_id, f"{kafka.client_id}-joiner{client_suffix}",
        RangePartitionAssignor, list(topics.inputs),
        lambda consumer: JoinRebalanceListener(owner, consumer),
    )  # fmt: skip


def consumer_lag(
    consumer: Any, tps: Iterable[TopicPartition], timeout_ms: int = 2000
) -> dict[tuple[str, int], int]:
    """End offset minus position for each of ``tps`` (call from the polling thread); a
    partition whose position is unknown is left out. Raises when the broker does not answer
    within ``timeout_ms`` (``KafkaTimeoutError``)."""
    tps = list(tps)
    if not tps:
        return {}
    ends = consumer.end_offsets(tps, timeout_ms=timeout_ms)
    out: dict[tuple[str, int], int] = {}
    for tp in tps:
        try:
            pos = consumer.position(tp, timeout_ms=1000)
        except Exception:  # position unknown yet (being reset): skip this round
            continue
        if pos is not None and tp in ends:
            out[(tp.topic, tp.partition)] = max(0, int(ends[tp]) - int(pos))
    return out
