"""Duplicates and malformed events on the real broker: same archive, exact DLQ contents."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter

import pandas as pd
import pytest

from streamer.dlq import read_dlq
from streamer.kafka.admin import ensure_topics
from tests.streamer.integration.streamer_it_support import (
    LABEL_COLS,
    archive_frame,
    expected_labels,
    produce,
    run_inprocess,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TS = 1_793_491_300_000


def malformed(topics, big: int) -> list[tuple[str, bytes, bytes, str]]:
    """(topic, key, value, expected reason) for every DLQ reason code of the parser."""
    imp, clk, cnv = topics.impressions, topics.clicks, topics.conversions
    click = json.dumps({"event": "click", "impression_id": "x1", "ts": TS}).encode()
    bad_user = {
        "event": "impression",
        "impression_id": "x2",
        "ts": TS,
        "user_id": None,
        "item_id": "v1",
        "features": {},
    }
    huge = {
        "event": "impression",
        "impression_id": "x3",
        "ts": TS,
        "user_id": "u",
        "item_id": "v",
        "features": {"blob": "z" * big},
    }
    cases = [
        (clk, b"\xff\xfe\xfd", "not_utf8"),
        (imp, b"{oops", "bad_json"),
        (cnv, b"[1, 2]", "not_object"),
        (
            clk,
            json.dumps({"event": "purchase", "impression_id": "x", "ts": TS}).encode(),
            "unknown_event",
        ),
        (imp, click, "wrong_topic"),
        (cnv, click, "wrong_topic"),
        (clk, json.dumps({"event": "click", "ts": TS}).encode(), "missing_field"),
        (
            cnv,
            json.dumps({"event": "conversion", "impression_id": "x", "ts": -1}).encode(),
            "bad_ts",
        ),
        (imp, json.dumps(bad_user).encode(), "bad_type"),
        (imp, json.dumps(huge).encode(), "oversize"),
    ]
    return [(t, f"bad{i}".encode(), v, r) for i, (t, v, r) in enumerate(cases * 2)]


def test_duplicates_and_malformed_events(stream_env, sim_dir, sim_events):
    env = stream_env(kafka={"max_message_bytes": 4000})
    cfg = env.cfg
    ensure_topics(cfg.kafka, cfg.topics)
    expected = expected_labels(sim_dir, cfg.joiner)
    unclicked = set(expected.impression_id[expected.click == 0])

    rng = random.Random(5)
    by_kind = (cfg.topics.impressions, cfg.topics.clicks, cfg.topics.conversions)
    stream = [
        (by_kind[k], key, val)
        for k, key, val in zip(
            sim_events.kind.tolist(), sim_events.keys, sim_events.values, strict=True
        )
    ]
    # duplicates: ~10% of events again, at a random point *after* the original (a duplicate is
    # a re-delivery; one placed before its original would be out-of-order data that may move
    # the watermark). Conversions of unclicked impressions are not duplicated: each copy
    # would be dead-lettered again. Malformed messages go anywhere.
    extra: list[list[tuple[str, bytes, bytes]]] = [[] for _ in range(len(stream) + 1)]
    for i, e in enumerate(stream):
        if rng.random() < 0.1 and not (
            e[0] == cfg.topics.conversions and e[1].decode() in unclicked
        ):
            extra[rng.randrange(i + 1, len(stream) + 1)].append(e)
    bad = malformed(cfg.topics, big=5000)
    for t, k, v, _ in bad:
        extra[rng.randrange(len(stream) + 1)].append((t, k, v))
    stream = [x for i, e in enumerate([*stream, None]) for x in ([e] if e else []) + extra[i]]
    produce(cfg.kafka.bootstrap, stream)

    run_inprocess(env)

    got = archive_frame(env.archive, LABEL_COLS)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)

    dlq = read_dlq(cfg.kafka.bootstrap, cfg.topics.dlq)
    reasons = Counter(d.reason for d in dlq)
    orphans = reasons.pop("orphan_conversion", 0)
    assert reasons == Counter(r for *_, r in bad)
    assert orphans == sum(
        1
        for k, key in zip(sim_events.kind.tolist(), sim_events.keys, strict=True)
        if k == 2 and key.decode() in unclicked
    )
    # the DLQ keeps the original bytes (a digest and a prefix above max_message_bytes), key
    # and source topic of each malformed message
    injected = Counter((t, k, hashlib.sha256(v).hexdigest()) for t, k, v, _ in bad)
    got_bad = Counter(
        (d.source_topic, d.key, d.original_digest()) for d in dlq if d.reason != "orphan_conversion"
    )
    assert got_bad == injected
    big = {v for *_, v, r in bad if r == "oversize"}
    cut = [d for d in dlq if d.truncated]
    assert len(cut) == 2 and all(d.reason == "oversize" for d in cut)
    assert all(d.original_bytes == len(v) and v.startswith(d.value) for d in cut for v in big)
    assert all(len(d.value) <= cfg.kafka.max_message_bytes // 2 for d in cut)
    assert all(
        d.source_partition in range(cfg.topics.partitions) and d.source_offset >= 0 for d in dlq
    )
