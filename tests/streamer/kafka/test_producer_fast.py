"""ProducerSink's accumulator fast path: same partitions, keys, values, headers as ``send``."""

from __future__ import annotations

from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from lt4rec.config import KafkaConfig
from streamer.kafka.admin import ensure_topics
from streamer.kafka.producer import ProducerSink, fast_path_supported, retriable
from streamer.store.base import Output
from tests.streamer.topics import topics_under

pytestmark = pytest.mark.kafka


def _read_all(bootstrap: str, topic: str) -> list[Any]:
    consumer: Any = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[Any] = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            batch = consumer.poll(timeout_ms=3000)
            if not batch:
                break
            for records in batch.values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def test_fast_path_lands_records_where_send_would(kafka_bootstrap, unique_name):
    kafka = KafkaConfig(bootstrap=kafka_bootstrap, max_message_bytes=2000)
    topics = topics_under(unique_name("fast"), partitions=3)
    ensure_topics(kafka, topics)
    big = b"x" * 1_200_000  # over max_request_size: send's own error, not the fast path's
    outs = [
        Output(i, f"imp-{i}:final".encode(), b'{"n":%d}' % i, [("h", b"%d" % i)] if i % 7 else [])
        for i in range(300)
    ]
    sink = ProducerSink(kafka)
    try:
        sink.send(topics.examples, outs[:1])  # first send: metadata through KafkaProducer.send
        assert sink._fast is True and fast_path_supported(sink.producer)
        sink.send(topics.examples, outs[1:])
        # refused for good: returned (the caller re-routes it), the others still delivered
        extra = Output(300, b"imp-300:final", b'{"n":300}', [("h", b"300")])
        failed = sink.send(topics.examples, [Output(0, b"k", big, []), extra])
        assert [i for i, _ in failed] == [0] and "max_request_size" in str(failed[0][1])
        assert not retriable(failed[0][1])
        outs.append(extra)
    finally:
        sink.close()
    got = _read_all(kafka_bootstrap, topics.examples)
    assert sorted((r.key, r.value) for r in got) == sorted((o.key, o.value) for o in outs)
    for r in got:  # kafka-python's DefaultPartitioner: murmur2(key) over sorted partitions
        assert r.partition == (murmur2(r.key) & 0x7FFFFFFF) % 3
        i = int(r.value[5:-1])
        assert [(k, bytes(v)) for k, v in r.headers] == ([("h", b"%d" % i)] if i % 7 else [])
    by_partition: dict[int, list[int]] = {}
    for r in sorted(got, key=lambda r: (r.partition, r.offset)):
        by_partition.setdefault(r.partition, []).append(int(r.value[5:-1]))
    assert all(v == sorted(v) for v in by_partition.values())  # order kept per partition
