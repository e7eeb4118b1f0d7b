"""Archive: one row per impression, per-day files named by chunk, atomic, exactly once."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lt4rec.data.io import read_examples
from lt4rec.data.spec import FeatureSpec
from streamer.archive import ArchiveSchemaError, ArchiveWriter, archive_files, day_of, read_archive
from streamer.archive.fastjson import table_from_json
from streamer.joiner import ArchiveChunk
from streamer.joiner.types import JsonRows
from tests.streamer.joiner.joinkit import T0, Feed, S, new_engine

DAY = 86_400 * S


def row(iid: str, ts: int, **features) -> dict:
    return {"impression_id": iid, "kind": "final", "ts": ts, "label_ts": ts + 60 * S,
            "user_id": "u", "item_id": "i", "features": features, "click": 0,
            "conversion": 0, "click_ts": None, "conversion_ts": None}  # fmt: skip


def chunk(first: int, rows: list[dict], partition: int = 0) -> ArchiveChunk:
    return ArchiveChunk(partition, first, first + len(rows) - 1, rows)


def test_day_of_is_the_utc_date():
    assert day_of(T0) == "2025-12-01"
    assert day_of(T0 - 1) == "2025-11-30"
    assert day_of(0) == "1970-01-01"


def test_chunk_is_split_per_day_and_named_by_seq_range(tmp_path):
    c = chunk(7, [row("a", T0, n=1), row("b", T0 + DAY, n=2), row("c", T0 + 5, n=3)], 3)
    paths = ArchiveWriter().write(c, tmp_path)
    rel = [p.relative_to(tmp_path).as_posix() for p in paths]
    assert rel == ["dt=2025-12-01/part-p0003-000000000007-000000000009.parquet",
                   "dt=2025-12-02/part-p0003-000000000007-000000000009.parquet"]  # fmt: skip
    t = read_archive(tmp_path)
    assert sorted(t.column("impression_id").to_pylist()) == ["a", "b", "c"]
    assert t.schema.field("n").type == pa.int64()
    assert "dt" not in t.schema.names


def test_rewrite_is_idempotent_and_tmp_files_are_ignored(tmp_path):
    c = chunk(0, [row("a", T0, n=1), row("b", T0, n=2)])
    w = ArchiveWriter()
    first = w.write(c, tmp_path)
    (first[0].parent / ".part-x.parquet.tmp-1").write_bytes(b"half a file")
    assert w.write(c, tmp_path) == first
    assert archive_files(tmp_path) == first
    assert read_archive(tmp_path).num_rows == 2


def test_feature_types_are_fixed_by_the_first_value(tmp_path):
    w = ArchiveWriter()
    w.write(chunk(0, [row("a", T0, n=1, s="x", d=0.5, m=["p"])]), tmp_path)
    w.write(chunk(1, [row("b", T0, n="7", s=3, d=2, m="q", new=1.5)]), tmp_path)
    w.write(chunk(2, [row("c", T0, n=2.5)]), tmp_path)  # not an integer: null, counted
    t = read_archive(tmp_path).sort_by("impression_id")
    types = {f.name: str(f.type) for f in t.schema if f.name in ("n", "s", "d", "m", "new")}
    assert types == {"n": "int64", "s": "string", "d": "double", "m": "list<element: string>",
                     "new": "double"}  # fmt: skip
    assert t.column("n").to_pylist() == [1, 7, None]
    assert t.column("s").to_pylist() == ["x", "3", None]
    assert t.column("m").to_pylist() == [["p"], ["q"], None]
    assert t.column("new").to_pylist() == [None, 1.5, None]
    assert w.coerced_nulls == 1
    stored = json.loads((tmp_path / "_schema.json").read_text())["features"]
    assert stored == {"n": "int64", "s": "string", "d": "float64", "m": "list<string>",
                      "new": "float64"}  # fmt: skip


def test_feature_spec_wins_and_bad_types_are_named(tmp_path):
    ArchiveWriter({"n": "float64"}).write(chunk(0, [row("a", T0, n=1)]), tmp_path)
    assert read_archive(tmp_path).schema.field("n").type == pa.float64()
    with pytest.raises(ArchiveSchemaError, match=r"feature spec.*'n': 'decimal'"):
        ArchiveWriter({"n": "decimal"})
    (tmp_path / "_schema.json").write_text("{oops")
    with pytest.raises(ArchiveSchemaError, match=r"_schema\.json"):
        ArchiveWriter().write(chunk(1, [row("b", T0)]), tmp_path)


def test_feature_named_like_a_column_gets_a_prefix(tmp_path):
    ArchiveWriter().write(chunk(0, [row("a", T0, click="yes", n=1)]), tmp_path)
    t = read_archive(tmp_path)
    assert t.column("feature_click").to_pylist() == ["yes"] and t.column("click").to_pylist() == [0]


def test_empty_archive_reads_as_empty_table(tmp_path):
    t = read_archive(tmp_path / "missing")
    assert t.num_rows == 0 and "impression_id" in t.schema.names


def test_crash_between_write_and_ack_keeps_rows_exactly_once(open_store, tmp_path):
    feed = Feed()
    a = new_engine(open_store(), owner="a")
    a.process(0, [feed.imp(f"i{k}", T0 + k * DAY // 2) for k in range(6)])
    a.flush_all(0)
    c1 = a.seal_archive(0)
    assert c1 is not None and len(c1.rows) == 6
    ArchiveWriter().write(c1, tmp_path)  # ...then the process dies before ack_archive
    b = new_engine(open_store(), owner="b")
    b.process(0, [feed.imp("late", T0 + 3 * DAY)])
    b.flush_all(0)
    redo = b.sealed_chunks(0)
    assert [(c.first_seq, c.last_seq) for c in redo] == [(c1.first_seq, c1.last_seq)]
    assert b.seal_archive(0, min_rows=2) is None  # one new row: below min_rows
    for c in [*redo, b.seal_archive(0)]:
        assert c is not None
        ArchiveWriter().write(c, tmp_path)
        b.ack_archive(c)
        b.ack_archive(c)  # idempotent
    ids = read_archive(tmp_path).column("impression_id").to_pylist()
    assert sorted(ids) == sorted([f"i{k}" for k in range(6)] + ["late"])
    assert b.sealed_chunks(0) == [] and b.stats().partitions[0].outbox["archive"] == 0


def test_archive_is_readable_as_training_data(tmp_path):
    rows = [row(f"r{k}", T0 + k, c=str(k % 3), d=k / 10, m=["a", "b"]) for k in range(4)]
    ArchiveWriter().write(chunk(0, rows), tmp_path)
    spec = FeatureSpec.from_dict({
        "sparse": ["user_id", "item_id", "c"], "multi": ["m"], "dense": ["d"],
        "labels": {"click": "click", "conversion": "conversion"}, "id": "impression_id",
        "time": "ts", "user": "user_id"})  # fmt: skip
    assert read_examples(tmp_path, spec).num_rows == 4


values = st.one_of(
    st.integers(-(2**40), 2**40), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5), st.lists(st.text(max_size=3), max_size=3),
)  # fmt: skip


@settings(max_examples=30, deadline=None)
@given(batches=st.lists(st.lists(st.dictionaries(st.sampled_from("fgh"), values, max_size=3),
                                 min_size=1, max_size=4), min_size=1, max_size=3))  # fmt: skip
def test_column_types_never_change_across_files(tmp_path_factory, batches):
    root = tmp_path_factory.mktemp("arch")
    w = ArchiveWriter()
    seq = 0
    for feats in batches:
        rows = [row(f"r{seq + i}", T0, **f) for i, f in enumerate(feats)]
        w.write(chunk(seq, rows), root)
        seq += len(rows)
    t = read_archive(root)  # concat fails if any file disagrees on a column type
    assert t.num_rows == seq
    stored = json.loads((root / "_schema.json").read_text())["features"] if (
        root / "_schema.json").exists() else {}  # fmt: skip
    names = {"string": "string", "int64": "int64", "float64": "double"}
    for name, kind in stored.items():
        assert str(t.schema.field(name).type) == names.get(kind, "list<element: string>")


def test_fast_json_path_is_taken_for_known_features():
    rows = [row("a", T0, n=1, s="x", d=0.5, m=["p"]), row("b", T0, n=2, d=3)]
    raw = [json.dumps(r).encode() for r in rows]
    types = {"n": "int64", "s": "string", "d": "float64", "m": "list<string>"}
    t = table_from_json(raw, types)
    assert t is not None and t.to_pylist()[1]["d"] == 3.0 and t.to_pylist()[1]["s"] is None
    assert table_from_json(raw, {"n": "int64"}) is None  # unknown features: the dict path


@settings(max_examples=40, deadline=None)
@given(feats=st.lists(st.dictionaries(st.sampled_from("fgh"), values, max_size=3),
                      min_size=1, max_size=6))  # fmt: skip
def test_json_and_dict_paths_write_the_same_table(tmp_path_factory, feats):
    seed = [row("s", T0, f=1, g="x", h=["y"])]
    rows = [row(f"r{i}", T0 + i * DAY // 3, **f) for i, f in enumerate(feats)]
    tables = []
    for lazy in (False, True):
        root = tmp_path_factory.mktemp("arch")
        w = ArchiveWriter()
        w.write(chunk(0, seed), root)  # fixes the types: f int64, g string, h list<string>
        body = JsonRows([json.dumps(r).encode() for r in rows]) if lazy else rows
        w.write(ArchiveChunk(0, 1, len(rows), body), root)
        tables.append(read_archive(root).sort_by("impression_id"))
    assert tables[0].equals(tables[1])


def test_engine_chunks_decode_lazily(open_store):
    eng = new_engine(open_store())
    eng.process(0, [Feed().imp("a", T0)])
    eng.flush_all(0)
    c = eng.seal_archive(0)
    assert c is not None and isinstance(c.rows, JsonRows) and len(c.rows) == 1
    assert c.rows[0]["impression_id"] == "a" and list(c.rows) == [c.rows[0]]
