"""ParquetStream: every matching row once, bounded buffers, unified schemas, streamed stats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lt4rec.config import DataConfig
from lt4rec.data import DataError, FeatureSpec, Normalizer, encode_table
from lt4rec.data.encode import dense_matrix
from lt4rec.data.stream import ParquetStream, fit_normalizer_stream

SPEC = FeatureSpec(
    sparse=("user_id", "item_id"),
    multi=("tags",),
    dense=("quality", "age"),
    click="click",
    conversion="conversion",
    id="impression_id",
    time="ts",
    user="user_id",
)
CFG = DataConfig(hash_buckets=1009, multi_max_len=3, batch_size=8)


def _write(root: Path, name: str, start: int, n: int, with_age: bool = True) -> Path:
    cols = {
        "impression_id": [f"i{start + k}" for k in range(n)],
        "ts": [start + k for k in range(n)],
        "user_id": [f"u{(start + k) % 7}" for k in range(n)],
        "item_id": [f"v{(start + k) % 5}" for k in range(n)],
        "tags": [["a", "b"][: (start + k) % 3] for k in range(n)],
        "quality": [float(start + k) * 0.5 for k in range(n)],
        "click": [(start + k) % 2 for k in range(n)],
        "conversion": [int((start + k) % 4 == 1) for k in range(n)],
    }
    if with_age:
        cols["age"] = [float((start + k) % 11) for k in range(n)]
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    tmp_path = tmp_path_factory.mktemp("stream")  # read-only for the tests: shared
    return [
        _write(tmp_path, "dt=1/a.parquet", 0, 37),
        _write(tmp_path, "dt=1/b.parquet", 37, 20, with_age=False),  # written before `age`
        _write(tmp_path, "dt=2/c.parquet", 57, 45),
    ]


def _ids(stream: ParquetStream, **kw) -> list[int]:
    """Impression numbers in batch order (the sparse user id is not unique: use quality)."""
    out: list[int] = []
    for b in stream.batches(**kw):
        out.extend(b.dense[:, 0].tolist())
    return out


def test_every_row_once_in_file_order_without_shuffle(files):
    norm = Normalizer(("quality", "age"), (0.0, 0.0), (0.5, 1.0))
    stream = ParquetStream(files, SPEC, CFG, norm, shuffle_rows=16, read_rows=5)
    assert len(stream) == 102
    got = _ids(stream, batch_size=8, shuffle=False)
    assert got == [float(k) for k in range(102)]


@settings(max_examples=20, deadline=None)
@given(
    shuffle_rows=st.integers(1, 60),
    read_rows=st.integers(1, 30),
    batch_size=st.integers(1, 40),
    seed=st.integers(0, 10),
)
def test_shuffled_batches_cover_every_row_exactly_once(
    files, shuffle_rows, read_rows, batch_size, seed
):
    norm = Normalizer(("quality", "age"), (0.0, 0.0), (0.5, 1.0))
    stream = ParquetStream(files, SPEC, CFG, norm, shuffle_rows=shuffle_rows, read_rows=read_rows)
    g = torch.Generator().manual_seed(seed)
    batches = list(stream.batches(batch_size, shuffle=True, generator=g))
    got = [x for b in batches for x in b.dense[:, 0].tolist()]
    assert sorted(got) == [float(k) for k in range(102)]
    assert all(len(b) == batch_size for b in batches[:-1])
    again = _ids(
        stream, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    assert again == got  # the generator decides the order


def test_row_filter_and_equal_encoding_to_encode_table(files):
    flt = (ds.field("ts") >= 10) & (ds.field("ts") < 80)
    norm = Normalizer(("quality", "age"), (1.0, 2.0), (3.0, 4.0))
    stream = ParquetStream(files, SPEC, CFG, norm, row_filter=flt, shuffle_rows=7, read_rows=3)
    assert len(stream) == 70
    got = stream.materialize()
    table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")
    want = encode_table(table, SPEC, CFG, norm)  # `age` of file b is null -> 0
    keep = torch.arange(10, 80)
    for name in ("sparse", "multi", "dense", "click", "conversion", "user"):
        assert torch.equal(getattr(got, name), getattr(want, name)[keep]), name


def test_streamed_normalizer_equals_the_in_memory_fit(files):
    stream = ParquetStream(files, SPEC, CFG, None, read_rows=6)
    got = fit_normalizer_stream(stream)
    table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")
    want = Normalizer.fit(SPEC.dense, dense_matrix(table, SPEC.dense))
    assert got.fields == want.fields
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-12)
    np.testing.assert_allclose(got.std, want.std, rtol=1e-9)


def test_buffers_stay_bounded(files, monkeypatch):
    """No encode call ever sees more than shuffle_rows + read_rows (+ the carried rows)."""
    norm = Normalizer(("quality", "age"), (0.0, 0.0), (1.0, 1.0))
    stream = ParquetStream(files, SPEC, CFG, norm, shuffle_rows=10, read_rows=4)
    seen: list[int] = []
    encode = stream.encode

    def spy(table):
        seen.append(table.num_rows)
        return encode(table)

    monkeypatch.setattr(stream, "encode", spy)
    list(stream.batches(8, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert max(seen) <= 10 + 4 and sum(seen) == 102


def test_errors_name_the_problem(tmp_path, files):
    with pytest.raises(DataError, match="no Parquet files"):
        ParquetStream([], SPEC, CFG, None)
    bad = _write(tmp_path, "x/bad.parquet", 0, 3)
    pq.write_table(pa.table({"impression_id": ["a"]}), bad)
    with pytest.raises(DataError, match="missing column"):
        ParquetStream([bad], SPEC, CFG, None)
    stream = ParquetStream(files, SPEC, CFG, None)
    with pytest.raises(ValueError, match="fit a normalizer first"):
        next(stream.batches(4, shuffle=False))
