# mypy: allow-untyped-defs
"""Dedup and the micro-batch cut: exactly the distinct examples, boundaries as specified."""

from __future__ import annotations

import json
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from lt4rec.data import FeatureSpec
from streamer.worker.batching import Batcher
from streamer.worker.dedup import HighWaterMarks
from streamer.worker.examples import SpecColumns

SPEC = FeatureSpec(
    sparse=("user_id",), multi=(), dense=(), click="click", conversion="conversion",
    id="impression_id", time="ts",
)  # fmt: skip
COLS = SpecColumns.of(SPEC)


@dataclass
class Rec:
    offset: int
    key: bytes
    value: bytes
    headers: list


def _value(i: int) -> bytes:
    body = {
        "impression_id": f"i{i}", "kind": "final", "ts": 1_800_000_000_000 + i,
        "label_ts": 1_800_000_000_000 + i, "user_id": "u", "item_id": "x", "features": {},
        "click": i % 2, "conversion": 0, "click_ts": None, "conversion_ts": None,
    }  # fmt: skip
    return json.dumps(body).encode()


def _stream(plan: list[tuple[int, bool]]) -> tuple[list[Rec], set[tuple[int, int]]]:
    """Records of one topic partition: (join partition, repeat?) per step; a repeat
    re-sends the last few seqs of that join partition (a joiner crash re-delivery)."""
    recs, seqs, distinct = [], {}, set()
    for src, repeat in plan:
        nxt = seqs.get(src, 0)
        batch = range(max(0, nxt - 3), nxt) if repeat and nxt else [nxt]
        for seq in batch:
            h = [("lt4rec.partition", b"%d" % src), ("lt4rec.seq", b"%d" % seq),
                 ("lt4rec.policy", b"wait_full")]  # fmt: skip
            recs.append(Rec(len(recs), f"{src}-{seq}".encode(), _value(src * 1000 + seq), h))
            distinct.add((src, seq))
        if not (repeat and nxt):
            seqs[src] = nxt + 1
    return recs, distinct


PLANS = st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=120)


@settings(max_examples=60, deadline=None)
@given(
    plan=PLANS,
    size=st.integers(1, 17),
    split=st.integers(1, 50),
    mode=st.sampled_from(["time", "offset"]),
)
def test_every_distinct_example_is_batched_once_however_records_are_polled(plan, size, split, mode):
    recs, distinct = _stream(plan)
    b = Batcher("t", COLS, "wait_full", size, mode, max_wait_s=3600.0)
    cuts = []
    for i in range(0, len(recs), split):
        cuts += b.add(0, recs[i : i + split])
    cuts += b.flush()
    got = [(e.source, e.seq) for c in cuts for e in c.examples]
    assert sorted(got) == sorted(distinct)
    assert sum(c.advance.duplicates for c in cuts) == len(recs) - len(distinct)
    assert max(c.advance.offsets[0] for c in cuts) == len(recs)
    if mode == "offset":  # fixed windows of the offsets, whatever the poll boundaries
        for c in cuts:
            offs = [e.offset for e in c.examples]
            assert len({o // size for o in offs}) <= 1
        ref = Batcher("t", COLS, "wait_full", size, "offset", 3600.0)
        one = ref.add(0, recs) + ref.flush()
        assert [[e.offset for e in c.examples] for c in cuts] == [
            [e.offset for e in c.examples] for c in one
        ]
    else:
        assert all(len(c.examples) <= size for c in cuts)


def test_a_restart_from_the_trained_marks_skips_what_was_trained():
    recs, distinct = _stream([(0, False)] * 10 + [(1, False)] * 5 + [(0, True)])
    b = Batcher("t", COLS, "wait_full", 4, "offset", 3600.0)
    first = b.add(0, recs[:8])  # two windows trained, then a crash
    trained = HighWaterMarks()
    for c in first:
        for p, lanes in c.advance.marks.items():
            trained.raise_to(p, lanes)
    nxt = max(c.advance.offsets[0] for c in first)
    again = Batcher("t", COLS, "wait_full", 4, "offset", 3600.0)
    again.assign(0, trained.of(0))
    rest = again.add(0, recs[nxt:]) + again.flush()
    got = [(e.source, e.seq) for c in first + rest for e in c.examples]
    assert sorted(got) == sorted(distinct)


def test_time_mode_cuts_after_max_wait_and_drop_forgets_a_partition():
    recs, _ = _stream([(0, False)] * 3)
    b = Batcher("t", COLS, "wait_full", 100, "time", max_wait_s=0.5)
    assert b.add(0, recs) == [] and b.pending_rows == 3
    assert b.due(now=0.0) == []
    cut = b.due(now=1e12)
    assert len(cut) == 1 and len(cut[0].examples) == 3 and b.pending_rows == 0
    b.add(1, recs)
    b.drop([1])
    assert b.pending_rows == 0 and b.flush() == []


def test_bad_records_become_dead_letters_with_the_joiner_headers():
    recs, _ = _stream([(0, False)] * 2)
    recs.append(Rec(2, b"k", b"{bad", recs[0].headers))
    b = Batcher("topic.ex", COLS, "wait_full", 10, "offset", 3600.0)
    (cut,) = b.flush() if not b.add(3, recs) else []
    assert (
        len(cut.examples) == 2
        and cut.advance.dead_letters == 1
        and cut.dead_reasons == ["bad_json"]
    )
    key, value, headers = cut.dead[0]
    h = {k: v.decode() for k, v in headers}
    assert (key, value) == (b"k", b"{bad")
    assert h["reason"] == "bad_json" and h["source_topic"] == "topic.ex"
    assert (h["source_partition"], h["source_offset"]) == ("3", "2")
