"""Records the broker refuses for good never wedge a partition (issue 7, item 1).

Topics created beforehand with small ``max.message.bytes`` stand for a broker that takes less
than the joiner was told: an example above it is diverted to the DLQ as ``undeliverable``
(the example is the payload, origin headers kept), a DLQ record above the DLQ topic's limit
is re-sent without its payload, and the partition carries on with the next records."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from kafka import TopicPartition

from streamer.daemon import DaemonOptions, JoinerDaemon
from streamer.delivery import ORIGIN_PARTITION, ORIGIN_SEQ
from streamer.dlq import read_dlq
from streamer.kafka.admin import admin_client, ensure_topics
from streamer.rebalance import Changes
from tests.streamer.integration.streamer_it_support import read_topic

pytestmark = pytest.mark.kafka
TS = 1_793_491_200_000


class FakeConsumer:
    def seek(self, tp, offset): ...
    def pause(self, *tps): ...
    def resume(self, *tps): ...


def _rec(offset: int, key: bytes, value: bytes, ts: int = TS) -> SimpleNamespace:
    return SimpleNamespace(offset=offset, key=key, value=value, timestamp=ts)


def _imp(iid: str, blob: str) -> bytes:
    return json.dumps({"event": "impression", "impression_id": iid, "ts": TS, "user_id": "u",
                       "item_id": "v", "features": {"blob": blob}}).encode()  # fmt: skip


def test_refused_examples_and_dlq_records_are_diverted_not_wedged(stream_env):
    env = stream_env(store_url="memory://", topics={"partitions": 1})
    t = env.cfg.topics
    admin = admin_client(env.cfg.kafka)
    try:  # the examples topic takes at most 4 kB records, the DLQ topic 8 kB

        def small(limit: int) -> dict:
            return {"num_partitions": 1, "replication_factor": 1,
                    "configs": {"max.message.bytes": str(limit)}}  # fmt: skip

        admin.create_topics({t.examples: small(4096), t.dlq: small(8192)})
        admin.wait_for_topics([t.examples, t.dlq])
    finally:
        admin.close()
    ensure_topics(env.cfg.kafka, t)
    d = JoinerDaemon(env.cfg, DaemonOptions())
    d.consumer = FakeConsumer()
    try:
        d.parts.apply(Changes(assigned={TopicPartition(x, 0) for x in d.kinds}))
        imp = TopicPartition(t.impressions, 0)
        batch = {imp: [_rec(0, b"big", _imp("big", "x" * 6000)),  # its example: 6 kB
                       _rec(1, b"bad", b"{" + b"z" * 9000),  # bad_json, its DLQ copy: 9 kB
                       _rec(2, b"ok", _imp("ok", "small"))]}  # fmt: skip
        assert d._process(batch)
        d.engine.flush_all(0)
        d.delivery.drain(0)
        assert d.engine.stats().partitions[0].outbox == {"examples": 0, "dlq": 0, "archive": 2}
        assert d.parts.stalled == {}  # nothing waits for a retry: the partition goes on
        # the next records of the partition are delivered as usual
        d._process({imp: [_rec(3, b"later", _imp("later", "small"))]})
        d.engine.flush_all(0)
        d.delivery.drain(0)
        undeliverable = d.metrics.undeliverable
        assert undeliverable.labels(sink="examples", outcome="diverted")._value.get() == 1
        assert undeliverable.labels(sink="dlq", outcome="diverted")._value.get() == 1
    finally:
        d.sink.close()
    examples = read_topic(env.cfg.kafka.bootstrap, t.examples)
    assert sorted(r.key for r in examples) == [b"later:final", b"ok:final"]
    dlq = {d.reason: d for d in read_dlq(env.cfg.kafka.bootstrap, t.dlq)}
    assert set(dlq) == {"undeliverable", "bad_json"}
    diverted = dlq["undeliverable"]
    assert diverted.key == b"big:final" and json.loads(diverted.value)["impression_id"] == "big"
    assert "MessageSizeTooLarge" in diverted.detail and diverted.source_topic == t.examples
    stripped = dlq["bad_json"]
    assert stripped.value == b"" and stripped.truncated and stripped.original_bytes == 9001
    assert stripped.source_offset == 1
    raw = read_topic(env.cfg.kafka.bootstrap, t.dlq)
    origin = {k for r in raw if r.key == b"big:final" for k, _ in r.headers}
    assert {ORIGIN_PARTITION, ORIGIN_SEQ} <= origin
