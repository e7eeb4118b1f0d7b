"""Table -> tensors: multi-valued padding/truncation, dense normalisation, labels, batching."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lt4rec.config import DataConfig
from lt4rec.data import DataError, FeatureSpec, Normalizer, encode_table, field_schema
from lt4rec.data.encode import encode_multi
from lt4rec.data.hashing import hash_column

MakeTable = Callable[..., pa.Table]

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


@pytest.fixture
def make_table() -> MakeTable:
    """Factory of small example tables in SPEC's layout."""

    def make(n: int = 6, quality_offset: float = 0.0, **override: Any) -> pa.Table:
        cols = {
            "impression_id": [f"i{k}" for k in range(n)],
            "ts": list(range(n)),
            "user_id": [f"u{k % 3}" for k in range(n)],
            "item_id": list(range(100, 100 + n)),
            "tags": [[f"t{j}" for j in range(k % 4)] for k in range(n)],
            "quality": [float(k) + quality_offset for k in range(n)],
            "age": [20.0 + k for k in range(n)],
            "click": [k % 2 for k in range(n)],
            "conversion": [1 if k % 4 == 1 else 0 for k in range(n)],
        }
        cols.update(override)
        return pa.table(cols)

    return make


def test_shapes_dtypes_and_schema(make_table: MakeTable) -> None:
    cfg = DataConfig(hash_buckets=1000, multi_max_len=3)
    data = encode_table(make_table(), SPEC, cfg)
    assert len(data) == 6
    assert data.sparse.shape == (6, 2) and data.sparse.dtype == torch.int64
    assert data.multi.shape == (6, 1, 3) and data.multi.dtype == torch.int64
    assert data.dense.shape == (6, 2) and data.dense.dtype == torch.float32
    assert data.click.dtype == torch.float32 and data.click.tolist() == [0, 1, 0, 1, 0, 1]
    assert data.conversion.tolist() == [0, 1, 0, 0, 0, 1]
    assert data.user is not None and data.user[0] == data.user[3] != data.user[1]
    assert ((data.sparse >= 1) & (data.sparse < 1000)).all()
    fs = field_schema(SPEC, cfg)
    assert (fs.n_sparse, fs.n_multi, fs.n_dense) == (2, 1, 2)
    assert (fs.hash_buckets, fs.multi_max_len) == (1000, 3)


def test_multi_padding_truncation_and_nulls() -> None:
    values = pa.array([["a", "b", "c", "d"], [], None, ["b", None], ["c"]], pa.list_(pa.string()))
    out = encode_multi(values, "tags", 1000, 3)  # [5, 3]
    hashed = hash_column(pa.array(list("abcd")), "tags", 1000).tolist()
    code = dict(zip("abcd", hashed, strict=True))
    assert out.tolist() == [
        [code["a"], code["b"], code["c"]],  # truncated to 3
        [0, 0, 0],  # empty list
        [0, 0, 0],  # null list
        [code["b"], 0, 0],  # null element -> 0, then padding
        [code["c"], 0, 0],
    ]


@settings(max_examples=40, deadline=None)
@given(
    lists=st.lists(
        st.one_of(st.none(), st.lists(st.sampled_from(["x", "y", "z", "w"]), max_size=7)),
        min_size=1,
        max_size=20,
    ),
    max_len=st.integers(1, 5),
    start=st.integers(0, 3),
)
def test_multi_matches_row_by_row_reference(
    lists: list[list[str] | None], max_len: int, start: int
) -> None:
    arr = pa.array(lists, pa.list_(pa.string())).slice(min(start, len(lists) - 1))
    out = encode_multi(arr, "f", 50, max_len)
    code = dict(zip("xyzw", hash_column(pa.array(list("xyzw")), "f", 50).tolist(), strict=True))
    for row, values in zip(out.tolist(), arr.to_pylist(), strict=True):
        expected = [code[v] for v in (values or [])][:max_len]
        assert row == expected + [0] * (max_len - len(expected))


def test_normalizer_fitted_on_train_only_and_applied_unchanged(make_table: MakeTable) -> None:
    cfg = DataConfig()
    train = encode_table(make_table(), SPEC, cfg)
    norm = train.normalizer
    assert norm is not None
    assert norm.fields == ("quality", "age")
    assert norm.mean == pytest.approx((2.5, 22.5))
    assert train.dense.mean(0).abs().max() < 1e-6
    shifted = encode_table(make_table(quality_offset=100.0), SPEC, cfg, norm)
    # Test data is standardised with the training statistics, not its own.
    assert shifted.dense[:, 0].mean().item() == pytest.approx(100.0 / norm.std[0], rel=1e-5)
    assert shifted.normalizer is norm
    assert Normalizer.from_dict(norm.to_dict()) == norm


def test_missing_dense_values_become_zero(make_table: MakeTable) -> None:
    table = make_table(quality=[1.0, None, 3.0, float("nan"), 5.0, float("inf")])
    data = encode_table(table, SPEC, DataConfig())
    assert data.normalizer is not None and data.normalizer.mean[0] == pytest.approx(3.0)
    assert data.dense[[1, 3, 5], 0].tolist() == [0.0, 0.0, 0.0]
    assert torch.isfinite(data.dense).all()


def test_constant_dense_column_does_not_divide_by_zero(make_table: MakeTable) -> None:
    data = encode_table(make_table(age=[7.0] * 6), SPEC, DataConfig())
    assert data.dense[:, 1].abs().max() == 0


def test_normalizer_field_mismatch_is_an_error(make_table: MakeTable) -> None:
    other = Normalizer(("x",), (0.0,), (1.0,))
    with pytest.raises(DataError, match="fitted on dense fields"):
        encode_table(make_table(), SPEC, DataConfig(), other)
    with pytest.raises(ValueError, match="expected keys"):
        Normalizer.from_dict({"fields": []})


def test_bad_labels_are_errors_naming_the_column(make_table: MakeTable) -> None:
    with pytest.raises(DataError, match="label column 'click' has 1 null"):
        encode_table(make_table(click=[0, 1, None, 0, 0, 0]), SPEC, DataConfig(), source="f.pq")
    with pytest.raises(DataError, match="label column 'conversion' must be 0/1"):
        encode_table(make_table(conversion=[0, 2, 0, 0, 0, 0]), SPEC, DataConfig())


def test_batches_cover_every_row_once(make_table: MakeTable) -> None:
    data = encode_table(make_table(n=23), SPEC, DataConfig())
    ordered = list(data.batches(5, shuffle=False))
    assert [len(b) for b in ordered] == [5, 5, 5, 5, 3]
    assert torch.equal(torch.cat([b.sparse for b in ordered]), data.sparse)
    gen = torch.Generator().manual_seed(0)
    shuffled = list(data.batches(4, shuffle=True, generator=gen))
    items = torch.cat([b.sparse[:, 1] for b in shuffled])
    assert sorted(items.tolist()) == sorted(data.sparse[:, 1].tolist())
    assert not torch.equal(items, data.sparse[:, 1])
    again = list(data.batches(4, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(torch.cat([b.sparse[:, 1] for b in again]), items)
    b = data.batch(torch.tensor([2, 0]))
    assert b.user is not None and b.click.tolist() == [0.0, 0.0] and b.multi.shape[0] == 2


def test_subset_and_concat(make_table: MakeTable) -> None:
    data = encode_table(make_table(n=8), SPEC, DataConfig())
    a = data.subset(torch.arange(0, 3))
    b = data.subset(torch.arange(3, 8))
    both = type(data).concat([a, b])
    assert len(both) == 8 and torch.equal(both.multi, data.multi)
    assert both.user is not None and data.user is not None
    assert torch.equal(both.user, data.user)


def test_spec_without_user_gives_no_user_tensor(make_table: MakeTable) -> None:
    spec = FeatureSpec(SPEC.sparse, SPEC.multi, SPEC.dense, "click", "conversion", "id", "ts")
    data = encode_table(make_table(), spec, DataConfig())
    assert data.user is None and data.batch(torch.tensor([0])).user is None


def test_unhashable_sparse_type_names_source_and_column(make_table: MakeTable) -> None:
    table = make_table(item_id=[b"x"] * 6)
    with pytest.raises(DataError, match=r"f.parquet: column 'item_id'"):
        encode_table(table, SPEC, DataConfig(), source="f.parquet")


def test_multi_accepts_large_lists_and_int_elements() -> None:
    strings = pa.array([["1", "2"], None, ["3"]], pa.list_(pa.string()))
    ints = pa.array([[1, 2], None, [3]], pa.large_list(pa.int64()))
    assert encode_multi(ints, "f", 97, 2).tolist() == encode_multi(strings, "f", 97, 2).tolist()
