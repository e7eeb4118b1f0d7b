"""Archive columns: injective naming (no two features share a column, none shadows a base
column or the ``dt`` partition key), a bounded column count, every file readable by
``pyarrow.dataset``."""

from __future__ import annotations

import json

import pyarrow.dataset as ds
from hypothesis import given
from hypothesis import strategies as st

from streamer.archive import ArchiveWriter, read_archive
from streamer.archive.schema import (
    BASE_NAMES,
    FEATURE_PREFIX,
    OVERFLOW_COLUMN,
    RESERVED,
    column_name,
)
from streamer.joiner import ArchiveChunk
from streamer.joiner.types import JsonRows
from tests.streamer.archive.test_archive_writer import chunk, row
from tests.streamer.joiner.joinkit import T0

NAMES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(sorted(RESERVED)),
    st.builds(lambda n: FEATURE_PREFIX + n, st.text(max_size=8)),
    st.builds(lambda n: FEATURE_PREFIX * 2 + n, st.sampled_from(sorted(RESERVED))),
)


@given(st.lists(NAMES, unique=True, max_size=30))
def test_column_names_are_injective_and_never_reserved(names: list[str]) -> None:
    cols = [column_name(n) for n in names]
    assert len(set(cols)) == len(cols)
    assert not set(cols) & RESERVED


def _dataset(root) -> dict[str, list]:
    table = ds.dataset(root, format="parquet", partitioning="hive").to_table()
    return table.to_pydict()


def test_colliding_feature_names_stay_apart_and_readable(tmp_path):
    feats = {"click": "c", "feature_click": "fc", "feature_feature_click": "ffc", "dt": "d",
             "extra_features": "e", "ts": 5}  # fmt: skip
    w = ArchiveWriter()
    first = row("a", T0)
    first["features"] = feats  # "ts" as a feature name: row() cannot take it as a keyword
    w.write(chunk(0, [first]), tmp_path)
    w.write(chunk(1, [row("b", T0 + 1, click="c2")]), tmp_path)  # a later file, same schema
    got = _dataset(tmp_path)
    assert got["click"] == [0, 0] and got["ts"] == [T0, T0 + 1]
    assert got["feature_click"] == ["c", "c2"]
    assert got["feature_feature_click"] == ["fc", None]
    assert got["feature_feature_feature_click"] == ["ffc", None]
    assert got["feature_dt"] == ["d", None] and got["dt"] == ["2025-12-01"] * 2
    assert got["feature_extra_features"] == ["e", None] and got["feature_ts"] == [5, None]
    assert read_archive(tmp_path).num_rows == 2


def test_columns_beyond_max_fold_into_extra_features(tmp_path):
    w = ArchiveWriter(max_columns=3)
    first = [row(f"a{i}", T0, **{f"f{j}": j for j in range(i, i + 3)}) for i in range(3)]
    w.write(chunk(0, first), tmp_path)
    # engine chunks (JSON rows, the Arrow fast path) with known and unknown features
    raw = [json.dumps(row("b0", T0, f0=9)).encode(), json.dumps(row("b1", T0, zz="q")).encode()]
    w.write(ArchiveChunk(0, 3, 4, JsonRows(raw)), tmp_path)
    got = _dataset(tmp_path)
    names = [n for n in got if n not in BASE_NAMES and n != "dt"]
    assert names == ["f0", "f1", "f2", OVERFLOW_COLUMN]
    by_id = dict(zip(got["impression_id"], got[OVERFLOW_COLUMN], strict=True))
    assert by_id == {"a0": None, "a1": '{"f3":3}', "a2": '{"f3":3,"f4":4}', "b0": None,
                     "b1": '{"zz":"q"}'}  # fmt: skip
    assert dict(zip(got["impression_id"], got["f0"], strict=True))["b0"] == 9
    stored = json.loads((tmp_path / "_schema.json").read_text())
    assert stored == {"features": {"f0": "int64", "f1": "int64", "f2": "int64"}, "overflow": True}


def test_a_name_that_cannot_be_a_column_is_folded_not_fatal(tmp_path):
    ArchiveWriter().write(chunk(0, [row("a", T0, **{"\ud800": "s", "ok": 1})]), tmp_path)
    got = _dataset(tmp_path)
    assert got["ok"] == [1] and json.loads(got[OVERFLOW_COLUMN][0]) == {"\ud800": "s"}
