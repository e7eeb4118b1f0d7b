"""Replay tool: event-time merge of the simulator's Parquet and producing to Kafka."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lt4rec.config import KafkaConfig
from streamer.events import Impression, parse_event
from streamer.replay import ReplayError, key_partitions, load_events, replay
from tests.streamer.topics import topics_under

T0 = 1_793_491_200_000  # 2026-11-01 00:00 UTC
SPEC = {
    "sparse": ["user_id", "item_id", "city"],
    "multi": ["tags"],
    "dense": ["quality"],
    "labels": {"click": "click", "conversion": "conversion"},
    "id": "impression_id",
    "time": "ts",
    "user": "user_id",
}


def write_sim(root, ts, click_ts, conv_ts, split_at=None):
    """Write a tiny simulator-shaped data set (train/test split at ``split_at``)."""
    n = len(ts)
    table = pa.table(
        {
            "impression_id": [f"imp{i}" for i in range(n)],
            "ts": pa.array(ts, pa.int64()),
            "user_id": pa.array([i % 3 for i in range(n)], pa.int64()),
            "item_id": [f"v{i % 5}" for i in range(n)],
            "city": [["paris", "rome"][i % 2] for i in range(n)],
            "tags": [["a", "b"][: i % 3] for i in range(n)],
            "quality": [float(i) / 10 if i % 4 else None for i in range(n)],
            "click_ts": pa.array(click_ts, pa.int64()),
            "conversion_ts": pa.array(conv_ts, pa.int64()),
            "click": [int(c is not None) for c in click_ts],
            "conversion": [int(c is not None) for c in conv_ts],
        }
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / "spec.json").write_text(json.dumps(SPEC))
    cut = n if split_at is None else split_at
    pq.write_table(table.slice(0, cut), root / "train.parquet")
    if cut < n:
        pq.write_table(table.slice(cut), root / "test.parquet")
    return root


def test_events_are_merged_in_event_time_order(tmp_path) -> None:
    ts = [T0, T0 + 1000, T0 + 2000]
    clicks = [T0 + 2500, None, T0 + 2000]
    convs = [T0 + 9000, None, None]
    events = load_events(write_sim(tmp_path / "d", ts, clicks, convs, split_at=2))
    decoded = [
        parse_event(v, ["impression", "click", "conversion"][k])
        for v, k in zip(events.values, events.kind.tolist(), strict=True)
    ]
    got = [(e.kind, e.impression_id, e.ts) for e in decoded]
    assert got == [
        ("impression", "imp0", T0),
        ("impression", "imp1", T0 + 1000),
        ("impression", "imp2", T0 + 2000),
        ("click", "imp2", T0 + 2000),
        ("click", "imp0", T0 + 2500),
        ("conversion", "imp0", T0 + 9000),
    ]
    assert events.keys == [e.impression_id.encode() for e in decoded]
    imp0, imp1 = decoded[0], decoded[1]
    assert isinstance(imp0, Impression) and isinstance(imp1, Impression)
    assert imp0.user_id == "0" and imp0.item_id == "v0"
    assert imp0.features == {"city": "paris", "tags": []}  # null quality dropped
    assert imp1.features == {"city": "rome", "tags": ["a"], "quality": 0.1}


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**6),
            st.one_of(st.none(), st.integers(0, 10**6)),
            st.one_of(st.none(), st.integers(0, 10**6)),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_merge_is_sorted_and_complete(tmp_path_factory, rows) -> None:
    ts = [T0 + r[0] for r in rows]
    clicks = [None if r[1] is None else T0 + r[1] for r in rows]
    convs = [None if r[2] is None else T0 + r[2] for r in rows]
    events = load_events(write_sim(tmp_path_factory.mktemp("d"), ts, clicks, convs))
    assert np.all(np.diff(events.ts) >= 0)
    expected = len(rows) + sum(c is not None for c in clicks) + sum(c is not None for c in convs)
    assert len(events) == expected
    assert np.bincount(events.kind, minlength=3)[0] == len(rows)


def test_days_and_limit(tmp_path) -> None:
    day = 86_400_000
    ts = [T0 + 10, T0 + day - 1, T0 + day, T0 + 2 * day + 5]
    root = write_sim(tmp_path / "d", ts, [T0 + 3 * day, None, None, None], [None] * 4)
    one_day = load_events(root, days=1)
    assert int((one_day.kind == 0).sum()) == 2
    assert int((one_day.kind == 1).sum()) == 1  # its late click is kept
    limited = load_events(root, limit=3)
    assert int((limited.kind == 0).sum()) == 3


def test_missing_inputs_are_named(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"spec\.json"):
        load_events(tmp_path)
    root = write_sim(tmp_path / "d", [T0], [None], [None])
    (root / "train.parquet").unlink()
    with pytest.raises(ReplayError, match="no train/valid/test"):
        load_events(root)
    root2 = write_sim(tmp_path / "e", [T0], [None], [None])
    t = pq.read_table(root2 / "train.parquet").drop_columns(["click_ts"])
    pq.write_table(t, root2 / "train.parquet")
    with pytest.raises(ReplayError, match="click_ts"):
        load_events(root2)


@pytest.mark.kafka
@pytest.mark.parametrize("workers", [1, 2])
def test_replay_produces_keyed_co_partitioned_events(
    tmp_path, kafka_bootstrap, unique_name, workers
):
    from kafka import KafkaConsumer, TopicPartition

    from streamer.kafka.admin import ensure_topics

    n = 300
    ts = [T0 + i * 1000 for i in range(n)]
    clicks = [T0 + i * 1000 + 500 if i % 3 == 0 else None for i in range(n)]
    convs = [T0 + i * 1000 + 900 if i % 6 == 0 else None for i in range(n)]
    events = load_events(write_sim(tmp_path / "d", ts, clicks, convs))
    kafka = KafkaConfig(bootstrap=kafka_bootstrap)
    base = unique_name("rp")
    topics = topics_under(base, partitions=3)
    ensure_topics(kafka, topics)
    stats = replay(events, kafka, topics, workers=workers)
    assert (stats.impressions, stats.clicks, stats.conversions) == (n, 100, 50)

    consumer = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    tps = [TopicPartition(t, p) for t in topics.inputs for p in range(3)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    seen: dict[str, dict[str, int]] = {}
    got = 0
    for _ in range(100):
        for tp, recs in consumer.poll(timeout_ms=500).items():
            for rec in recs:
                got += 1
                seen.setdefault(rec.key.decode(), {})[tp.topic] = tp.partition
        if got >= len(events):
            break
    consumer.close()
    assert got == len(events)
    # co-partitioned: every event of an impression is in the same partition index
    assert all(len(set(parts.values())) == 1 for parts in seen.values())
    assert len(seen) == n
    # the partition is the default partitioner's (murmur2), with or without worker processes
    expected = dict(zip(events.keys, key_partitions(events.keys, 3).tolist(), strict=True))
    assert all(expected[k.encode()] == next(iter(parts.values())) for k, parts in seen.items())
