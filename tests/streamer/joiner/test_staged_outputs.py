"""ProcessResult.staged: exactly the outbox rows the transaction staged, or None (read back)."""

from __future__ import annotations

import pytest

from streamer.joiner import batch as batch_mod
from tests.streamer.joiner.joinkit import T0, Feed, joiner_cfg, new_engine


def _flat(staged):
    return {
        sink: [(first + i, *row) for first, rows in segs for i, row in enumerate(rows)]
        for sink, segs in staged.items()
    }


def _outbox(eng, sink):
    return [(o.seq, o.key, o.value, o.headers) for o in eng.pending(0, sink, 100_000)]


@pytest.mark.parametrize("policy", ["wait_full", "fnw", "es_dfm"])
def test_staged_rows_equal_the_outbox(open_store, policy):
    eng = new_engine(open_store(), joiner_cfg(policy=policy))
    feed = Feed()
    first = eng.process(0, [feed.imp(f"i{k}", T0 + k * 1000) for k in range(30)])
    assert first.staged is not None
    assert _flat(first.staged).get("examples", []) == _outbox(eng, "examples")
    eng.ack(0, "examples", 10**9)
    # labels, a bad message and an event time far ahead: windows close inside process()
    recs = [feed.click("i3", T0 + 5000), feed.conv("i3", T0 + 9000)]
    recs += [feed.invalid("click", b"{broken"), feed.imp("late", T0 + 3_600_000)]
    recs += [feed.click("zz", T0 + 3_600_000), feed.conv("zz", T0 + 3_600_000)]
    res = eng.process(0, recs)
    assert res.staged is not None
    flat = _flat(res.staged)
    assert flat["examples"] == _outbox(eng, "examples")
    assert len(flat["examples"]) >= (30 if policy == "wait_full" else 2)  # fnw: 2 positives
    assert flat["dlq"] == _outbox(eng, "dlq") and len(flat["dlq"]) == 1
    assert res.examples == len(flat["examples"]) and res.dlq == 1
    assert eng.flush_all(0).staged is None  # flush may close everything: nothing kept


def test_staged_is_none_past_one_due_chunk(open_store, monkeypatch):
    monkeypatch.setattr(batch_mod, "DUE_CHUNK", 50)
    eng = new_engine(open_store())
    feed = Feed()
    eng.process(0, [feed.imp(f"i{k}", T0 + k) for k in range(120)])
    far = T0 + 10**7  # every kind far ahead: the watermark passes all 120 windows
    res = eng.process(0, [feed.imp("far", far), feed.click("c", far), feed.conv("c", far)])
    assert res.examples >= 120 and res.staged is None
    assert len(_outbox(eng, "examples")) == res.examples  # all staged, read back by the daemon
