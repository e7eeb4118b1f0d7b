"""Topic admin on the real broker: create missing topics, refuse non-co-partitioned inputs."""

from __future__ import annotations

import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from lt4rec.config import KafkaConfig, TopicsConfig
from streamer.kafka.admin import (
    TopicLayoutError,
    admin_client,
    ensure_topics,
    input_partitions,
    partition_counts,
)
from tests.streamer.topics import topics_under

pytestmark = pytest.mark.kafka


def _topics(base: str, partitions: int = 3) -> TopicsConfig:
    return topics_under(base, partitions)


def test_ensure_topics_creates_all_five_and_is_idempotent(kafka_bootstrap, unique_name):
    kafka = KafkaConfig(bootstrap=kafka_bootstrap)
    topics = _topics(unique_name("adm"))
    ensure_topics(kafka, topics)
    ensure_topics(kafka, topics)  # second call: nothing to do, no error
    admin = admin_client(kafka)
    try:
        names = [topics.impressions, topics.clicks, topics.conversions, topics.examples, topics.dlq]
        assert partition_counts(admin, names) == dict.fromkeys(names, 3)
    finally:
        admin.close()
    assert input_partitions(kafka, topics) == 3


def test_created_topics_take_what_the_joiner_accepts(kafka_bootstrap, unique_name):
    kafka = KafkaConfig(bootstrap=kafka_bootstrap, max_message_bytes=2_000_000)
    topics = _topics(unique_name("adm"), partitions=1)
    ensure_topics(kafka, topics)
    admin = admin_client(kafka)
    try:
        names = [topics.impressions, topics.examples, topics.dlq]
        got = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        limits = {n: c["max.message.bytes"]["value"] for n, c in got["topic"].items()}
    finally:
        admin.close()
    assert limits == dict.fromkeys(names, str(2_000_000 + 65_536))


def test_inputs_with_different_partition_counts_are_refused(kafka_bootstrap, unique_name):
    kafka = KafkaConfig(bootstrap=kafka_bootstrap)
    base = unique_name("adm")
    admin = admin_client(kafka)
    try:
        admin.create_topics({f"{base}.clk": {"num_partitions": 2, "replication_factor": 1}})
        admin.wait_for_topics([f"{base}.clk"])
    finally:
        admin.close()
    with pytest.raises(TopicLayoutError, match="not co-partitioned"):
        ensure_topics(kafka, _topics(base, partitions=3))


def test_topic_names_must_be_distinct() -> None:
    with pytest.raises(ValueError, match="distinct"):
        TopicsConfig(impressions="a", clicks="a")
    assert TopicsConfig().inputs == {
        "lt4rec.impressions": "impression",
        "lt4rec.clicks": "click",
        "lt4rec.conversions": "conversion",
    }
