"""JoinEngine facade on every store: fencing, resume from the store, outbox, bounded memory."""

from __future__ import annotations

import tracemalloc

import pytest

from streamer.joiner import batch as batch_mod
from streamer.store import Fenced, MemoryStore, make_store
from tests.streamer.joiner.joinkit import (
    T0,
    Feed,
    S,
    archive_rows,
    drain,
    joiner_cfg,
    new_engine,
)


def test_second_owner_fences_the_first(open_store):
    feed = Feed()
    a = new_engine(open_store(), owner="a")
    a.process(0, [feed.imp("x", T0)])
    b = new_engine(open_store(), owner="b")  # claims partition 0: epoch 2
    with pytest.raises(Fenced):
        a.process(0, [feed.imp("y", T0)])
    assert a.claimed() == [] and 0 not in a.stats().partitions
    for call in (lambda: a.pending(0, "examples", 5), lambda: a.seal_archive(0),
                 lambda: a.flush_all(0), lambda: a.ack(0, "dlq", 3)):  # fmt: skip
        with pytest.raises(Fenced):
            call()
    # b resumes from the committed offsets: "y" was never applied
    assert b.claim(0) == {"imp": 1}
    b.process(0, [feed.imp("y", T0)])
    b.flush_all(0)
    assert sorted(r["impression_id"] for r in archive_rows(b)) == ["x", "y"]


def test_unclaimed_partition_is_fenced():
    eng = new_engine(MemoryStore())
    with pytest.raises(Fenced, match="not claimed"):
        eng.process(5, [])


def test_restart_resumes_pending_state_and_outbox(open_store):
    feed = Feed()
    a = new_engine(open_store(), owner="a")
    a.process(0, [feed.imp("x", T0), feed.click("x", T0 + S), feed.conv("x", T0 + 2 * S)])
    a.process(0, [feed.imp("y", T0)])
    b = new_engine(open_store(), owner="b")  # "a" crashed without draining anything
    st = b.stats().partitions[0]
    assert (st.pending, st.tombstones, st.outbox["examples"]) == (1, 1, 1)
    assert st.counters["events.impression"] == 2
    b.process(0, [feed.click("y", T0 + 3 * S)])
    b.flush_all(0)
    got = {r["impression_id"]: (r["click"], r["conversion"]) for r in archive_rows(b)}
    assert got == {"x": (1, 1), "y": (1, 0)}
    assert [e["_key"] for e in drain(b)] == ["x:final", "y:final"]
    assert b.stats().partitions[0].outbox == {"examples": 0, "dlq": 0, "archive": 0}


def test_pending_pages_and_ack_are_idempotent(open_store):
    eng = new_engine(open_store())
    feed = Feed()
    eng.process(0, [feed.invalid("click", f"bad{i}".encode()) for i in range(5)])
    page = eng.pending(0, "dlq", 2)
    assert [o.seq for o in page] == [0, 1] and page[0].value == b"bad0"
    eng.ack(0, "dlq", 1)
    eng.ack(0, "dlq", 1)
    assert [o.seq for o in eng.pending(0, "dlq", 10)] == [2, 3, 4]
    assert eng.stats().partitions[0].outbox["dlq"] == 3
    with pytest.raises(ValueError, match="sink"):
        eng.pending(0, "archive", 1)  # type: ignore[arg-type]


def test_max_pending_force_closes_the_oldest(open_store):
    eng = new_engine(open_store(), joiner_cfg(max_pending=3))
    feed = Feed()
    eng.process(0, [feed.imp(f"i{k}", T0 + k * S) for k in range(5)])
    st = eng.stats().partitions[0]
    assert st.pending == 3 and st.counters["forced_close"] == 2
    assert sorted(r["impression_id"] for r in archive_rows(eng)) == ["i0", "i1"]


def test_flush_memory_is_bounded_by_the_due_chunk(monkeypatch, tmp_path):
    """Closing N pending windows holds one chunk of entries in memory, not N (SQL store)."""
    monkeypatch.setattr(batch_mod, "DUE_CHUNK", 200)

    def peak(n: int) -> int:
        store = make_store(f"sqlite:///{tmp_path / f'peak{n}.db'}")
        eng = new_engine(store)
        feed = Feed()
        recs = [feed.imp(f"i{k}", T0 + k) for k in range(n)]
        for start in range(0, n, 1000):
            eng.process(0, recs[start : start + 1000])
        tracemalloc.start()
        eng.flush_all(0)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert eng.stats().partitions[0].outbox["archive"] == n
        store.close()
        return top

    small, large = peak(1_000), peak(8_000)
    assert large < 2 * small, (small, large)  # 8x the windows, about the same peak
