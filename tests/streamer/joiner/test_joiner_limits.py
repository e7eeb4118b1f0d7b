"""Size limits inside the engine: no example or DLQ record can exceed kafka.max_message_bytes,
and every counter increment of a transaction is reported (for the metrics)."""

from __future__ import annotations

import hashlib

from lt4rec.config import JoinerConfig
from streamer.joiner import JoinEngine
from streamer.store import make_store
from tests.streamer.joiner.joinkit import T0, TOPICS, Feed, S, drain, joiner_cfg


def _engine(cfg: JoinerConfig, max_bytes: int) -> JoinEngine:
    eng = JoinEngine(make_store("memory://"), cfg, TOPICS, "t", max_message_bytes=max_bytes)
    eng.claim(0)
    return eng


def test_oversize_dlq_copies_are_truncated_with_their_checksum() -> None:
    eng = _engine(joiner_cfg(), max_bytes=4000)
    f = Feed()
    big, small = b"z" * 10_000, b"{oops"
    eng.process(0, [f.invalid("impression", big, "oversize"), f.invalid("click", small)])
    out = {d["reason"]: d for d in drain(eng, "dlq")}
    whole, cut = out["bad_json"], out["oversize"]
    assert whole["value"] == small and "truncated" not in whole
    assert cut["value"] == big[:2000] and cut["key"] == b"k"
    assert cut["truncated"] == "1" and cut["original_bytes"] == "10000"
    assert cut["original_sha256"] == hashlib.sha256(big).hexdigest()
    assert len(cut["value"]) + sum(len(k) + len(v) for k, v in cut.items() if k != "value") < 4000


def test_impression_whose_examples_would_not_fit_is_dead_lettered() -> None:
    eng = _engine(joiner_cfg(), max_bytes=20_000)
    f = Feed()
    fits, escapes = "x" * 15_000, "\u00e9" * 5_000  # 5k characters, 10 kB UTF-8, 30 kB as JSON
    res = eng.process(0, [f.imp("a", T0, s=fits), f.imp("b", T0, s=escapes), f.click("b", T0)])
    dlq = drain(eng, "dlq")
    assert [(d["key"], d["reason"]) for d in dlq] == [(b"b", "oversize")]
    assert "would take up to" in dlq[0]["detail"]
    assert res.counters == {"events.impression": 2, "events.click": 1, "dlq.oversize": 1,
                            "orphans.held": 1}  # fmt: skip
    eng.flush_all(0)
    examples = drain(eng)
    assert [e["impression_id"] for e in examples] == ["a"]
    assert max(len(e["features"]["s"]) for e in examples) == 15_000


def test_counters_of_a_call_are_reported_once() -> None:
    eng = _engine(joiner_cfg(), max_bytes=1_000_000)
    f = Feed()
    recs = [f.imp("a", T0), f.imp("a", T0), f.click("a", T0 - 5 * S), f.conv("a", T0 + S)]
    res = eng.process(0, recs)
    assert res.counters["duplicates.impression"] == 1
    assert res.counters["out_of_window.click"] == 1
    again = eng.process(0, recs)  # a replay below the stored offsets counts nothing
    assert again.skipped == 4 and again.counters == {}
    assert eng.stats().totals["duplicates.impression"] == 1
