"""The StateStore contract, run identically on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.store import (
    ORPHAN,
    PENDING,
    TOMBSTONE,
    ChunkRef,
    Entry,
    Fenced,
    Output,
    StoreError,
    make_store,
)


def E(iid: str, deadline: int, state: int = PENDING, data: bytes = b"x") -> Entry:
    return Entry(iid, state, deadline, data)


def outs(first: int, n: int) -> list[Output]:
    return [Output(s, f"k{s}".encode(), f"v{s}".encode(), [("h", bytes([s % 256]))])
            for s in range(first, first + n)]  # fmt: skip


def stage(txn, sink: str, rows: list[Output]) -> None:
    txn.stage(sink, rows[0].seq, [(o.key, o.value, o.headers) for o in rows])


class Boom(Exception):
    pass


def test_claim_bumps_epoch_and_fences(open_store):
    store = open_store()
    assert store.claim(0, "a").epoch == 1
    assert store.claim(0, "b").epoch == 2
    with pytest.raises(Fenced, match="superseded"), store.transaction(0, 1):
        pass
    with store.transaction(0, 2) as txn:
        assert txn.read_meta().owner == "b"
    with pytest.raises(Fenced), store.transaction(7, 1):  # never claimed
        pass
    assert 0 in store.partitions()


def test_entries_roundtrip_due_and_oldest(open_store):
    store = open_store()
    ep = store.claim(3, "a").epoch
    with store.transaction(3, ep) as txn:
        txn.put([E("b", 20), E("a", 20), E("c", 5, ORPHAN), E("d", 99, TOMBSTONE, b"\x00\xff")])
    with store.transaction(3, ep) as txn:
        got = txn.get(["a", "d", "zz", "a"])
        assert set(got) == {"a", "d"}
        assert got["d"] == E("d", 99, TOMBSTONE, b"\x00\xff")
        assert [e.impression_id for e in txn.due(21, 10)] == ["c", "a", "b"]
        assert [e.impression_id for e in txn.due(20, 10)] == ["c"]  # strictly below
        assert [e.impression_id for e in txn.due(1000, 2)] == ["c", "a"]
        assert [e.impression_id for e in txn.oldest(PENDING, 5)] == ["a", "b"]
        txn.put([E("a", 50)])  # replace moves the deadline
        txn.delete(["b", "missing"])
        assert [e.impression_id for e in txn.due(60, 10)] == ["c", "a"]
    with store.transaction(3, ep) as txn:
        assert set(txn.get(["a", "b", "c"])) == {"a", "c"}
        assert txn.get(["a"])["a"].deadline == 50


def test_expire_deletes_one_state_below_the_watermark(open_store):
    store = open_store()
    ep = store.claim(0, "a").epoch
    with store.transaction(0, ep) as txn:
        txn.put([E("t1", 5, TOMBSTONE), E("t2", 9, TOMBSTONE), E("p", 1), E("t3", 10, TOMBSTONE)])
    with pytest.raises(Boom), store.transaction(0, ep) as txn:
        assert txn.expire(TOMBSTONE, 100) == 3
        raise Boom
    with store.transaction(0, ep) as txn:
        assert txn.expire(TOMBSTONE, 10) == 2  # t1, t2: strictly below
        assert txn.expire(TOMBSTONE, 10) == 0
        assert [e.impression_id for e in txn.due(100, 10)] == ["p", "t3"]
    with store.transaction(0, ep) as txn:
        assert set(txn.get(["t1", "t2", "t3", "p"])) == {"t3", "p"}


def test_partitions_are_isolated(open_store):
    store = open_store()
    e0, e1 = store.claim(0, "a").epoch, store.claim(1, "a").epoch
    with store.transaction(0, e0) as txn:
        txn.put([E("x", 1)])
        stage(txn, "examples", outs(0, 2))
    with store.transaction(1, e1) as txn:
        assert txn.get(["x"]) == {}
        assert txn.due(100, 10) == []
        assert txn.pending("examples", 10) == []


def test_transaction_rolls_back_everything(open_store):
    store = open_store()
    ep = store.claim(0, "a").epoch
    with store.transaction(0, ep) as txn:
        txn.put([E("keep", 10), E("gone", 11)])
        stage(txn, "archive", outs(0, 3))
        txn.write_meta({"v": 1})
    with pytest.raises(Boom), store.transaction(0, ep) as txn:
        txn.put([E("keep", 99), E("new", 1)])
        txn.delete(["gone"])
        stage(txn, "examples", outs(0, 2))
        stage(txn, "archive", outs(3, 1))
        assert txn.seal(1, 10) == ChunkRef(0, 0, 3)
        txn.write_meta({"v": 2})
        raise Boom
    with store.transaction(0, ep) as txn:
        got = txn.get(["keep", "gone", "new"])
        assert set(got) == {"keep", "gone"} and got["keep"].deadline == 10
        assert [e.impression_id for e in txn.due(100, 10)] == ["keep", "gone"]
        assert txn.pending("examples", 10) == []
        assert txn.chunks() == []
        assert txn.read_meta().data == {"v": 1}
        assert txn.seal(1, 10) == ChunkRef(0, 0, 2)


def test_outbox_pending_and_ack(open_store):
    store = open_store()
    ep = store.claim(0, "a").epoch
    with store.transaction(0, ep) as txn:
        stage(txn, "examples", outs(0, 5))
        stage(txn, "dlq", outs(0, 2))
    with store.transaction(0, ep) as txn:
        assert txn.pending("examples", 3) == outs(0, 3)
        assert txn.pending("examples", 10, after_seq=3) == outs(4, 1)
        assert txn.ack("examples", 2) == 3
        assert txn.ack("examples", 2) == 0  # idempotent
    with store.transaction(0, ep) as txn:
        assert [o.seq for o in txn.pending("examples", 10)] == [3, 4]
        assert txn.pending("dlq", 10) == outs(0, 2)


def test_archive_seal_chunks_and_drop(open_store):
    store = open_store()
    ep = store.claim(0, "a").epoch
    with store.transaction(0, ep) as txn:
        stage(txn, "archive", outs(0, 5))
        assert txn.seal(6, 100) is None  # fewer than min_rows
        c1 = txn.seal(1, 2)
        c2 = txn.seal(1, 100)
        assert (c1, c2) == (ChunkRef(0, 0, 1), ChunkRef(0, 2, 4))
        assert txn.seal(1, 100) is None
        with pytest.raises(ValueError, match="drop_chunk"):
            txn.ack("archive", 10)  # archive rows go per chunk
        txn.drop_chunk(c1)
        txn.drop_chunk(c2)
    with store.transaction(0, ep) as txn:
        stage(txn, "archive", outs(5, 3))
        c3 = txn.seal(1, 100)
        assert c3 == ChunkRef(0, 5, 7)
        assert txn.chunks() == [c3]
        assert txn.chunk_rows(c3) == outs(5, 3)
        txn.drop_chunk(c3)
        txn.drop_chunk(c3)  # idempotent
        assert txn.chunks() == [] and txn.chunk_rows(c3) == []


def test_state_survives_reopen(open_store):
    store = open_store()
    ep = store.claim(0, "a").epoch
    with store.transaction(0, ep) as txn:
        txn.put([E("a", 5, data=b"payload")])
        stage(txn, "examples", outs(0, 1))
        txn.write_meta({"offsets": {"imp": 7}})
    store.close()
    again = open_store()
    with again.transaction(0, ep) as txn:
        assert txn.get(["a"])["a"].data == b"payload"
        assert txn.pending("examples", 5) == outs(0, 1)
        assert txn.read_meta().data == {"offsets": {"imp": 7}}
    assert again.claim(0, "b").epoch == ep + 1


_parts = itertools.count(10)
ops = st.lists(
    st.tuples(
        st.sampled_from(["put", "delete"]),
        st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=4),
        st.integers(0, 30),
    ),
    max_size=25,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=ops, wm=st.integers(0, 31))
def test_entries_match_a_dict_model(open_store, ops, wm):
    store = open_store()
    part = next(_parts)  # a fresh partition per example
    ep = store.claim(part, "m").epoch
    model: dict[str, int] = {}
    with store.transaction(part, ep) as txn:
        for op, ids, deadline in ops:
            if op == "put":
                txn.put([E(i, deadline) for i in dict.fromkeys(ids)])
                model.update(dict.fromkeys(ids, deadline))
            else:
                txn.delete(list(dict.fromkeys(ids)))
                for i in ids:
                    model.pop(i, None)
    with store.transaction(part, ep) as txn:
        assert {i: e.deadline for i, e in txn.get(list("abcdefgh")).items()} == model
        expect = sorted((d, i) for i, d in model.items() if d < wm)
        assert [(e.deadline, e.impression_id) for e in txn.due(wm, 100)] == expect


def test_sqlite_parent_directory_is_created(tmp_path):
    store = make_store(f"sqlite:///{tmp_path / 'a' / 'b' / 'state.db'}")
    assert store.claim(0, "x").epoch == 1
    assert (tmp_path / "a" / "b" / "state.db").is_file()
    store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("runs/state.db", "neither 'memory://' nor a SQLAlchemy URL"),
        ("mysql://u:secret@h/db", "backend 'mysql' is not sqlite/postgresql"),
        ("postgresql+psycopg://u:secret@127.0.0.1:1/db", "cannot open the state store"),
    ],
)
def test_bad_store_urls_are_named_without_password(url, message):
    with pytest.raises(StoreError, match=message) as info:
        make_store(url)
    assert "secret" not in str(info.value)
