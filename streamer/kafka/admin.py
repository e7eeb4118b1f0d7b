"""Create the streamer's topics when missing (the broker runs with auto-create off).

The three input topics must be co-partitioned (same partition count) because partition ``p``
of each forms one join partition; :func:`ensure_topics` refuses to start otherwise. Topics it
creates take records up to ``kafka.max_message_bytes`` plus 64 KiB for keys and headers (and
never less than the broker's default), so the examples and DLQ topics can always hold what
the joiner produces from inputs it accepted.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

from lt4rec.config import KafkaConfig, TopicsConfig

log = logging.getLogger(__name__)
BROKER_DEFAULT_MAX_BYTES = 1_048_588  # Kafka's message.max.bytes default


class TopicLayoutError(RuntimeError):
    """Existing topics cannot serve as co-partitioned join inputs."""


def admin_client(kafka: KafkaConfig) -> KafkaAdminClient:
    """An admin client for ``kafka.bootstrap``."""
    return KafkaAdminClient(
        bootstrap_servers=kafka.bootstrap,
        client_id=f"{kafka.client_id}-admin",
        bootstrap_timeout_ms=kafka.bootstrap_timeout_ms,
    )


def partition_counts(admin: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partition count of each existing topic among ``names`` (missing ones are absent)."""
    existing = set(admin.list_topics())
    wanted = [n for n in names if n in existing]
    if not wanted:
        return {}
    described: list[dict[str, Any]] = admin.describe_topics(wanted)
    return {t["name"]: len(t.get("partitions") or []) for t in described}


def ensure_topics(kafka: KafkaConfig, topics: TopicsConfig, timeout_ms: int = 30_000) -> None:
    """Create missing topics with ``topics.partitions`` and check co-partitioning.

    Idempotent and safe when several joiners start at once (``TopicAlreadyExists`` is fine).
    Raises :class:`TopicLayoutError` when the input topics differ in partition count.
    """
    names = [topics.impressions, topics.clicks, topics.conversions, topics.examples, topics.dlq]
    admin = admin_client(kafka)
    try:
        counts = partition_counts(admin, names)
        missing = [n for n in names if n not in counts]
        if missing:
            limit = str(max(BROKER_DEFAULT_MAX_BYTES, kafka.max_message_bytes + 65_536))
            spec = {
                n: {"num_partitions": topics.partitions, "replication_factor": topics.replication,
                    "configs": {"max.message.bytes": limit}}
                for n in missing
            }  # fmt: skip
            for name, options in spec.items():
                try:
                    admin.create_topics({name: options}, timeout_ms=timeout_ms)
                    log.info("created topic %s (%d partitions)", name, topics.partitions)
                except TopicAlreadyExistsError:
                    pass
            admin.wait_for_topics(missing, timeout_ms=timeout_ms)
            counts = partition_counts(admin, names)
    finally:
        admin.close()
    inputs = {n: counts.get(n, 0) for n in topics.inputs}
    if len(set(inputs.values())) != 1:
        raise TopicLayoutError(
            f"input topics are not co-partitioned (partition counts {inputs}); "
            "impressions, clicks and conversions need the same partition count"
        )


MODELS_TOPIC_CONFIGS = {
    # the newest notice per model name survives compaction: a follower reading from the
    # beginning always finds the publication in service
    "cleanup.policy": "compact",
}


def ensure_models_topic(kafka: KafkaConfig, topics: TopicsConfig, timeout_ms: int = 30_000) -> None:
    """Create ``topics.models`` (ONE partition: notices are totally ordered) when missing.

    Raises :class:`TopicLayoutError` when it exists with more than one partition (followers
    read partition 0 only, so a notice elsewhere would be lost).
    """
    admin = admin_client(kafka)
    try:
        counts = partition_counts(admin, [topics.models])
        if topics.models not in counts:
            options = {
                "num_partitions": 1,
                "replication_factor": topics.replication,
                "configs": MODELS_TOPIC_CONFIGS,
            }
            try:
                admin.create_topics({topics.models: options}, timeout_ms=timeout_ms)
                log.info("created topic %s (1 partition, compacted)", topics.models)
            except TopicAlreadyExistsError:
                pass
            admin.wait_for_topics([topics.models], timeout_ms=timeout_ms)
            counts = partition_counts(admin, [topics.models])
    finally:
        admin.close()
    if counts.get(topics.models) != 1:
        raise TopicLayoutError(
            f"topic {topics.models} has {counts.get(topics.models)} partitions; "
            "model notices need exactly one (total order)"
        )


def input_partitions(kafka: KafkaConfig, topics: TopicsConfig) -> int:
    """The common partition count of the three input topics (after :func:`ensure_topics`)."""
    admin = admin_client(kafka)
    try:
        counts = partition_counts(admin, list(topics.inputs))
    finally:
        admin.close()
    values = set(counts.values())
    if len(counts) != 3 or len(values) != 1:
        raise TopicLayoutError(f"input topics missing or not co-partitioned: {counts}")
    return values.pop()
