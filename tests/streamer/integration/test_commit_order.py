"""The daemon's commit order, rebalance hooks and fencing, driven step by step.

A fake consumer stands in for Kafka's group consumer (assignment, seek, pause are observed);
the rebalance callbacks go through the real listener (which only records and pauses) and the
daemon applies them as its polling thread does after each poll. The producer sink talks to
the real broker. State: the in-memory store, shared with a second engine that plays
"another owner" to fence the daemon.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from kafka import TopicPartition

from lt4rec.config import AppConfig, load_app_config
from streamer.daemon import DaemonOptions, JoinerDaemon
from streamer.dlq import read_dlq
from streamer.joiner import JoinEngine
from streamer.kafka.admin import ensure_topics
from streamer.kafka.consumer import JoinRebalanceListener

pytestmark = pytest.mark.kafka
TS = 1_793_491_200_000


class FakeConsumer:
    def __init__(self) -> None:
        self.seeks: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()

    def seek(self, tp, offset):
        self.seeks[tp] = offset

    def pause(self, *tps):
        self.paused.update(tps)

    def resume(self, *tps):
        self.paused.difference_update(tps)


def _rec(offset: int, key: str, value: bytes):
    return SimpleNamespace(offset=offset, key=key.encode(), value=value)


def _imp(iid: str, ts: int) -> bytes:
    return json.dumps({"event": "impression", "impression_id": iid, "ts": ts, "user_id": "u",
                       "item_id": "v", "features": {"f": 1}}).encode()  # fmt: skip


@pytest.fixture
def daemon(stream_env):
    env = stream_env(store_url="memory://")
    cfg: AppConfig = load_app_config(env.path)
    ensure_topics(cfg.kafka, cfg.topics)
    d = JoinerDaemon(cfg, DaemonOptions())
    d.consumer = FakeConsumer()
    yield d
    d.sink.close()


def _tps(d: JoinerDaemon, p: int) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t in d.kinds]


def _assign(d: JoinerDaemon, tps: set[TopicPartition]) -> None:
    """The IO thread's callback (record + pause), then the polling thread's work."""
    JoinRebalanceListener(d.rebalances, d.consumer).on_partitions_assigned(tps)
    d.parts.apply(d.rebalances.take())


def _revoke(d: JoinerDaemon, tps: set[TopicPartition]) -> None:
    JoinRebalanceListener(d.rebalances, d.consumer).on_partitions_revoked(tps)
    assert d.owned, "the callback only records: nothing is released before the poll returns"
    d.parts.apply(d.rebalances.take())


def test_state_then_sinks_then_offsets_with_fencing(daemon):
    d = daemon
    t = d.cfg.topics
    # p0 complete, p1 lacks its conversions topic-partition: paused, not claimed
    _assign(d, {*_tps(d, 0), TopicPartition(t.impressions, 1), TopicPartition(t.clicks, 1)})
    assert d.owned == [0]
    assert d.consumer.seeks == dict.fromkeys(_tps(d, 0), 0)  # nothing stored: beginning
    assert d.consumer.paused == {TopicPartition(t.impressions, 1), TopicPartition(t.clicks, 1)}

    imp, clk = TopicPartition(t.impressions, 0), TopicPartition(t.clicks, 0)
    batch = {imp: [_rec(0, "a", _imp("a", TS)), _rec(1, "b", b"{broken")],
             clk: [_rec(0, "a", json.dumps({"event": "click", "impression_id": "a",
                                             "ts": TS + 1000}).encode())]}  # fmt: skip
    commit = d._process(batch)
    # 3. offsets to commit: next offset of every processed topic-partition
    assert {tp: om.offset for tp, om in commit.items()} == {imp: 2, clk: 1}
    # 1. state: offsets stored in the same transaction; 2. sinks drained and acknowledged
    part = d.engine.stats().partitions[0]
    assert part.next_offsets == {t.impressions: 2, t.clicks: 1}
    assert part.outbox["dlq"] == 0 and d.summary.dlq == 1
    dlq = read_dlq(d.cfg.kafka.bootstrap, t.dlq)
    assert [(x.reason, x.source_offset, x.value) for x in dlq] == [("bad_json", 1, b"{broken")]

    # a replayed batch (offsets below the stored ones) changes nothing
    d._process(batch)
    assert d.summary.dlq == 1

    # another owner claims p0: the daemon is fenced, drops p0, pauses it, keeps running
    other = JoinEngine(d.store, d.cfg.joiner, d.cfg.topics, "other")
    assert other.claim(0) == {t.impressions: 2, t.clicks: 1}
    assert d._process({imp: [_rec(2, "c", _imp("c", TS + 5))]}) == {}
    assert d.owned == [] and set(_tps(d, 0)) <= d.consumer.paused

    # reassigned later: claim again (fencing the other), resume, seek to the stored offsets
    _assign(d, set(_tps(d, 0)))
    assert d.owned == [0] and not set(_tps(d, 0)) & d.consumer.paused
    assert d.consumer.seeks[imp] == 2 and d.consumer.seeks[clk] == 1
    assert d.consumer.seeks[TopicPartition(t.conversions, 0)] == 0


def test_revocation_seals_the_archive_and_releases(daemon, tmp_path):
    d = daemon
    t = d.cfg.topics
    _assign(d, set(_tps(d, 0)))
    imp = TopicPartition(t.impressions, 0)
    d._process({imp: [_rec(i, f"i{i}", _imp(f"i{i}", TS + i)) for i in range(3)]})
    d.engine.flush_all(0)  # close the three windows: three archive rows staged
    _revoke(d, {*_tps(d, 0), TopicPartition(t.impressions, 3)})  # 3 was never ours: ignored
    assert d.owned == [] and d.summary.archive_rows == 3
    assert d.summary.examples == 3  # final examples produced before the release
    files = sorted(p.name for p in d.delivery.archive_dir.rglob("*.parquet"))
    assert len(files) == 1 and files[0].startswith("part-p0000-")
