"""Producer sink and DLQ layout on the real broker: outputs arrive with keys and headers."""

from __future__ import annotations

import pytest

from lt4rec.config import KafkaConfig
from streamer.dlq import HEADERS, DlqRecord, make_headers, read_dlq
from streamer.kafka.admin import ensure_topics
from streamer.kafka.producer import ProducerSink
from streamer.store.base import Output
from tests.streamer.topics import topics_under

pytestmark = pytest.mark.kafka


def test_dlq_outputs_round_trip_through_the_broker(kafka_bootstrap, unique_name):
    base = unique_name("snk")
    kafka = KafkaConfig(bootstrap=kafka_bootstrap)
    topics = topics_under(base, partitions=2)
    ensure_topics(kafka, topics)
    outs = [
        Output(
            i,
            f"k{i}".encode(),
            b"\xff raw %d" % i,
            make_headers("bad_json", "x" * 900, topics.clicks, i % 2, 100 + i),
        )
        for i in range(20)
    ]
    sink = ProducerSink(kafka)
    try:
        sink.send(topics.dlq, outs)
        sink.send(topics.dlq, [])  # nothing to do
    finally:
        sink.close()
    got = sorted(read_dlq(kafka_bootstrap, topics.dlq), key=lambda d: d.source_offset)
    assert [(d.key, d.value) for d in got] == [(o.key, o.value) for o in outs]
    assert {d.reason for d in got} == {"bad_json"}
    assert all(len(d.detail) == 500 for d in got)  # detail is truncated
    assert [(d.source_topic, d.source_partition, d.source_offset) for d in got] == [
        (topics.clicks, i % 2, 100 + i) for i in range(20)
    ]


def test_dlq_record_requires_every_header() -> None:
    headers = make_headers("late_click", "d", "t", 1, 2)
    assert [k for k, _ in headers] == list(HEADERS)
    rec = DlqRecord.from_message(b"k", b"v", headers)
    assert (rec.reason, rec.source_partition, rec.source_offset) == ("late_click", 1, 2)
    with pytest.raises(ValueError, match="source_offset"):
        DlqRecord.from_message(b"k", b"v", headers[:-1])
