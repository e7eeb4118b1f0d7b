"""Join rules of the design doc, one scenario each (memory store; windows from joinkit.SMALL).

Windows: click 60 s, attribution 300 s, lateness 30 s, orphan grace 60 s. ``feed.tick(t)``
pushes the watermark to ``t - 30 s``.
"""

from __future__ import annotations

import pytest

from streamer.events import Impression
from streamer.joiner import SourceRecord
from streamer.store import MemoryStore
from tests.streamer.joiner.joinkit import T0, Feed, S, archive_rows, drain, new_engine


@pytest.fixture
def feed() -> Feed:
    return Feed()


@pytest.fixture
def eng():
    return new_engine(MemoryStore())


def real(rows: list[dict]) -> list[dict]:
    """Rows of the test's impressions (not of the watermark ticks)."""
    return [r for r in rows if not r["impression_id"].startswith("tick-")]


def final(eng, iid: str) -> dict:
    rows = [r for r in archive_rows(eng) if r["impression_id"] == iid]
    assert len(rows) == 1, rows
    return rows[0]


def test_unclicked_impression_closes_after_click_window(eng, feed):
    eng.process(0, [feed.imp("a", T0)])
    eng.process(0, feed.tick(T0 + 90 * S))  # wm = T0 + 60 s: not past the window yet
    assert real(archive_rows(eng)) == []
    assert eng.stats().partitions[0].pending == 1  # the tick is final at once
    res = eng.process(0, feed.tick(T0 + 91 * S))  # wm passes T0 + 60 s
    assert res.archived == 2 and res.watermark == T0 + 61 * S
    row = final(eng, "a")
    assert (row["click"], row["conversion"], row["label_ts"]) == (0, 0, T0 + 60 * S)
    assert row["features"] == {"f_int": 1, "f_str": "a"} and row["kind"] == "final"


def test_click_window_bounds_are_inclusive(eng, feed):
    eng.process(0, [feed.imp("in", T0), feed.imp("out", T0), feed.imp("neg", T0)])
    eng.process(0, [feed.click("in", T0 + 60 * S), feed.click("out", T0 + 60 * S + 1)])
    eng.process(0, [feed.click("neg", T0 - 1)])
    eng.process(0, feed.tick(T0 + 2000 * S))
    rows = {r["impression_id"]: r for r in archive_rows(eng)}
    assert rows["in"]["click"] == 1 and rows["in"]["click_ts"] == T0 + 60 * S
    assert rows["in"]["label_ts"] == T0 + 360 * S  # clicked: closes click + attribution
    assert rows["out"]["click"] == 0 and rows["neg"]["click"] == 0
    assert eng.stats().totals["out_of_window.click"] == 2


def test_conversion_makes_label_final_at_once(eng, feed):
    eng.process(0, [feed.imp("a", T0), feed.click("a", T0 + 5 * S)])
    res = eng.process(0, [feed.conv("a", T0 + 300 * S)])  # no watermark at all yet
    assert res.watermark == T0 - 30 * S and res.archived == 1
    row = final(eng, "a")
    assert (row["click"], row["conversion"]) == (1, 1)
    assert (row["click_ts"], row["conversion_ts"], row["label_ts"]) == (
        T0 + 5 * S, T0 + 300 * S, T0 + 300 * S)  # fmt: skip
    assert [e["_key"] for e in drain(eng)] == ["a:final"]


def test_conversion_outside_attribution_window_does_not_count(eng, feed):
    eng.process(0, [feed.imp("a", T0), feed.click("a", T0 + 5 * S)])
    eng.process(0, [feed.conv("a", T0 + 306 * S)])
    eng.process(0, feed.tick(T0 + 2000 * S))
    row = final(eng, "a")
    assert (row["click"], row["conversion"]) == (1, 0)
    assert eng.stats().totals["out_of_window.conversion"] == 1


def test_conversion_before_click_waits_for_the_click(eng, feed):
    eng.process(0, [feed.imp("a", T0), feed.conv("a", T0 + 50 * S)])
    assert archive_rows(eng) == []
    res = eng.process(0, [feed.click("a", T0 + 10 * S)])
    assert res.archived == 1
    assert final(eng, "a")["conversion_ts"] == T0 + 50 * S


def test_conversion_without_click_is_an_orphan(eng, feed):
    conv = feed.conv("a", T0 + 30 * S)
    eng.process(0, [feed.imp("a", T0), conv])
    eng.process(0, feed.tick(T0 + 2000 * S))
    assert final(eng, "a")["conversion"] == 0
    dlq = drain(eng, "dlq")
    assert [(d["reason"], d["value"], d["source_offset"]) for d in dlq] == [
        ("orphan_conversion", conv.value, "0")]  # fmt: skip
    # ... and one arriving after the window closed is dead-lettered the same way
    eng.process(0, [feed.conv("a", T0 + 40 * S)])
    assert [d["reason"] for d in drain(eng, "dlq")] == ["orphan_conversion"]
    assert eng.stats().totals["dlq.orphan_conversion"] == 2


def test_labels_before_impression_are_held_then_joined(eng, feed):
    eng.process(0, [feed.click("a", T0 + 10 * S), feed.conv("a", T0 + 20 * S)])
    assert eng.stats().partitions[0].orphans == 1
    eng.process(0, feed.tick(T0 + 80 * S))  # wm T0+50s < label ts + grace
    res = eng.process(0, [feed.imp("a", T0)])
    assert res.archived == 1
    row = final(eng, "a")
    assert (row["click"], row["conversion"]) == (1, 1)
    assert eng.stats().totals["orphans.matched"] == 2


def test_orphans_expire_after_grace_to_the_dlq(eng, feed):
    c = feed.click("ghost", T0)
    eng.process(0, [c])
    eng.process(0, feed.tick(T0 + 90 * S))  # wm T0+60 s: not past ts + grace
    assert drain(eng, "dlq") == []
    eng.process(0, feed.tick(T0 + 91 * S))
    dlq = drain(eng, "dlq")
    assert [(d["reason"], d["source_topic"], d["key"]) for d in dlq] == [
        ("orphan_click", "clk", b"ghost")]  # fmt: skip
    assert eng.stats().partitions[0].orphans == 0


def test_duplicates_are_idempotent(eng, feed):
    batch = [feed.imp("a", T0), feed.imp("a", T0), feed.click("a", T0 + S), feed.click("a", T0 + S)]
    eng.process(0, batch)
    eng.process(0, feed.tick(T0 + 340 * S))  # closes "a" (clicked: at T0 + 301 s)
    eng.process(0, [feed.imp("a", T0), feed.click("a", T0 + S)])  # after finalisation
    assert final(eng, "a")["click"] == 1
    assert [e["_key"] for e in drain(eng) if e["impression_id"] == "a"] == ["a:final"]
    totals = eng.stats().totals
    assert totals["duplicates.impression"] == 2 and totals["duplicates.click"] == 2
    assert drain(eng, "dlq") == []


def test_tombstones_expire_and_older_impressions_go_to_dlq(eng, feed):
    eng.process(0, [feed.imp("a", T0)])
    eng.process(0, feed.tick(T0 + 100 * S))
    assert eng.stats().partitions[0].tombstones == 2  # "a" and the tick
    eng.process(0, feed.tick(T0 + 391 * S))  # wm T0+361 s > T0 + 60 s + 300 s
    assert eng.stats().partitions[0].tombstones == 2  # the two ticks
    late = feed.imp("a", T0)
    res = eng.process(0, [late])
    assert res.archived == 0 and res.dlq == 1
    dlq = drain(eng, "dlq")
    assert [(d["reason"], d["value"]) for d in dlq] == [("late_impression", late.value)]


def test_late_click_after_close_goes_to_dlq(eng, feed):
    eng.process(0, [feed.imp("a", T0)])
    eng.process(0, feed.tick(T0 + 100 * S))
    eng.process(0, [feed.click("a", T0 + 50 * S)])  # in window, but the window closed
    assert final(eng, "a")["click"] == 0
    assert [d["reason"] for d in drain(eng, "dlq")] == ["late_click"]
    assert eng.stats().totals["late.click"] == 1


def test_invalid_records_go_to_dlq_and_advance_offsets(eng, feed):
    bad = feed.invalid("impression", b"{nope", "bad_json")
    res = eng.process(0, [bad, feed.imp("a", T0)])
    assert res.next_offsets == {"imp": 2} and res.dlq == 1
    dlq = drain(eng, "dlq")
    assert dlq[0]["reason"] == "bad_json" and dlq[0]["value"] == b"{nope"
    assert dlq[0]["source_partition"] == "0" and dlq[0]["source_offset"] == "0"


def test_records_below_stored_offsets_are_skipped(eng, feed):
    recs = [feed.imp("a", T0), feed.click("a", T0 + S), feed.imp("b", T0)]
    eng.process(0, recs[:2])
    res = eng.process(0, recs)  # a replay overlapping what is committed
    assert (res.skipped, res.applied) == (2, 1)
    assert eng.claim(0) == {"imp": 2, "clk": 1}
    assert eng.stats().totals["events.impression"] == 2


def test_record_of_another_partition_is_rejected(eng, feed):
    other = Feed(partition=1).imp("a", T0)
    with pytest.raises(ValueError, match="partition 0"):
        eng.process(0, [other])


def test_wrong_event_type_for_kind_is_rejected(eng, feed):
    rec = feed.imp("a", T0)
    bad = SourceRecord("click", "clk", 0, 0, None, rec.value, rec.event)
    with pytest.raises(ValueError, match="not a click"):
        eng.process(0, [bad])
    assert eng.claim(0) == {}  # nothing committed


def test_flush_all_closes_everything(eng, feed):
    eng.process(0, [feed.imp("a", T0), feed.imp("b", T0), feed.click("b", T0 + S),
                    feed.click("ghost", T0)])  # fmt: skip
    res = eng.flush_all(0)
    assert res.archived == 2 and res.dlq == 1
    st = eng.stats().partitions[0]
    assert (st.pending, st.orphans, st.tombstones) == (0, 0, 0)
    assert {r["impression_id"]: r["click"] for r in archive_rows(eng)} == {"a": 0, "b": 1}


def test_example_json_round_trips_odd_strings(eng, feed):
    iid = 'a:"b"\\ü\n'
    feats = {"q": 'x"y', "uni": "日本", "f": 1e-7, "big": 2**53, "tags": ["a", "é"], "neg": -1.5}
    eng.process(0, [feed.imp(iid, T0, **feats), feed.click(iid, T0 + S), feed.conv(iid, T0 + S)])
    (ex,) = drain(eng)
    assert ex.pop("_key") == f"{iid}:final"
    assert ex == {
        "impression_id": iid, "kind": "final", "ts": T0, "label_ts": T0 + S,
        "user_id": f"u-{iid}", "item_id": f"item-{iid}", "features": feats, "click": 1,
        "conversion": 1, "click_ts": T0 + S, "conversion_ts": T0 + S,
    }  # fmt: skip
    assert final(eng, iid)["features"] == feats


def test_unstorable_impression_ids_go_to_dlq(eng, feed):
    nul, lone = feed.imp("a\x00b", T0), feed.click("x\ud800", T0)
    res = eng.process(0, [nul, lone, feed.imp("ok", T0)])
    assert res.dlq == 2 and eng.stats().partitions[0].pending == 1
    assert [(d["reason"], d["value"]) for d in drain(eng, "dlq")] == [
        ("bad_id", nul.value), ("bad_id", lone.value)]  # fmt: skip


def test_odd_user_and_feature_text_survives_store_examples_and_archive(open_store, tmp_path):
    from streamer.archive import ArchiveWriter, read_archive

    eng = new_engine(open_store())
    feed = Feed()
    odd = "\ud83d x \x00"  # lone surrogate and NUL: legal JSON escapes
    rec = feed.record(Impression("i", T0, odd, odd, {"s": odd, "m": [odd]}))
    eng.process(0, [rec])
    eng.flush_all(0)
    (ex,) = drain(eng)
    assert (ex["user_id"], ex["features"]) == (odd, {"s": odd, "m": [odd]})
    for chunk in [eng.seal_archive(0)]:
        assert chunk is not None
        ArchiveWriter().write(chunk, tmp_path)
    t = read_archive(tmp_path)
    assert t.column("user_id").to_pylist() == ["? x \x00"]  # unpaired surrogate replaced


def test_held_labels_per_id_are_bounded(eng, feed):
    from streamer.joiner.rules import MAX_HELD

    eng.process(0, [feed.click("ghost", T0 + k) for k in range(MAX_HELD + 3)])
    eng.process(0, [feed.imp("a", T0), *[feed.conv("a", T0 + k) for k in range(MAX_HELD + 2)]])
    reasons = [d["reason"] for d in drain(eng, "dlq")]
    assert reasons == ["too_many_labels"] * 5
