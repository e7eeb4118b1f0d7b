"""End to end on the real broker: replay the simulator -> joiner -> archive == ground truth."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest

from streamer.dlq import read_dlq
from streamer.kafka.admin import ensure_topics
from streamer.replay import read_table, replay
from tests.streamer.integration.streamer_it_support import (
    LABEL_COLS,
    archive_frame,
    example_origins,
    expected_labels,
    orphan_conversions,
    read_topic,
    run_inprocess,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.mark.postgres
def test_replay_joiner_archive_matches_ground_truth(db_url, stream_env, sim_dir, sim_events):
    env = stream_env(store_url=db_url)
    cfg = env.cfg
    ensure_topics(cfg.kafka, cfg.topics)
    replay(sim_events, cfg.kafka, cfg.topics)

    summary = run_inprocess(env)

    expected = expected_labels(sim_dir, cfg.joiner)
    got = archive_frame(env.archive)
    assert len(got) == len(expected)  # exactly one row per valid impression
    pd.testing.assert_frame_equal(got[LABEL_COLS], expected, check_dtype=False)
    assert (got["kind"] == "final").all()
    # features and ids survive the round trip Kafka -> state store -> Parquet
    source = read_table(sim_dir)[0].to_pandas().sort_values("impression_id")
    source = source.reset_index(drop=True)
    for col in ("ts", "user_id", "item_id", "category", "age_bucket", "item_quality"):
        assert got[col].tolist() == source[col].tolist(), col
    assert got["item_tags"].map(list).tolist() == source["item_tags"].map(list).tolist()

    # live example stream: one final example per impression (no crash -> no duplicates)
    examples = read_topic(cfg.kafka.bootstrap, cfg.topics.examples)
    keys = Counter(r.key.decode() for r in examples)
    assert len(keys) == len(expected) and set(keys.values()) == {1}
    # origin headers: per join partition the seqs are exactly 0..n-1, one per example
    origins = example_origins(examples)
    assert all(len(o) == 1 for o in origins.values())
    per_src: dict[int, list[int]] = {}
    for (src, seq), in origins.values():
        per_src.setdefault(src, []).append(seq)
    assert all(sorted(v) == list(range(len(v))) for v in per_src.values()), per_src.keys()
    assert {bytes(v) for r in examples for k, v in r.headers if k == "lt4rec.policy"} == {
        cfg.joiner.policy.encode()
    }
    by_id = {json.loads(r.value)["impression_id"]: json.loads(r.value) for r in examples}
    clicked = expected[expected.click == 1].impression_id.tolist()
    assert all(by_id[i]["click"] == 1 for i in clicked)

    dlq = read_dlq(cfg.kafka.bootstrap, cfg.topics.dlq)
    assert [d.reason for d in dlq].count("orphan_conversion") == orphan_conversions(
        sim_dir, cfg.joiner
    )
    assert summary.records == len(sim_events)
    assert summary.archive_rows == len(expected)
