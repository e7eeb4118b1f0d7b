"""Vocabulary-free hashing: deterministic across processes, salted per field, OOV-safe."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lt4rec.data.hashing import hash_column, hash_keys

BUCKETS = 100_003


def test_golden_values_are_stable() -> None:
    # Pinned values, computed once in another process: SipHash with a key derived from the
    # field name, so no dependence on PYTHONHASHSEED. A change here invalidates checkpoints.
    assert hash_column(pa.array(["a", "b", "42", None]), "item_id", BUCKETS).tolist() == [
        59026,
        81314,
        41943,
        0,
    ]
    assert hash_keys(pa.array(["u1", None]), "user_id").tolist() == [5212562964012374760, 0]


def test_ints_hash_like_their_string_form_and_nulls_are_zero() -> None:
    ints = hash_column(pa.array([1, 22, None, 333], pa.int64()), "f", BUCKETS)
    strs = hash_column(pa.array(["1", "22", None, "333"]), "f", BUCKETS)
    floats = hash_column(pa.array([1.0, 22.0, None, 333.0]), "f", BUCKETS)
    assert ints.tolist() == strs.tolist() == floats.tolist()
    assert ints[2] == 0 and (ints[[0, 1, 3]] > 0).all()


def test_fields_are_salted_differently() -> None:
    values = pa.array([f"v{k}" for k in range(200)])
    a = hash_column(values, "item_id", BUCKETS)
    b = hash_column(values, "creator", BUCKETS)
    assert (a != b).mean() > 0.95


def test_unseen_values_get_a_bucket_without_vocabulary() -> None:
    train = hash_column(pa.array(["a", "b"]), "f", BUCKETS)
    test = hash_column(pa.array(["a", "never-seen", "b"]), "f", BUCKETS)
    assert test[0] == train[0] and test[2] == train[1]
    assert 1 <= test[1] < BUCKETS


def test_chunked_and_dictionary_inputs_agree_with_plain() -> None:
    plain = hash_column(pa.array(["a", "b", "a", None]), "f", 97)
    chunked = hash_column(pa.chunked_array([["a", "b"], ["a", None]]), "f", 97)
    dictionary = hash_column(pa.array(["a", "b", "a", None]).dictionary_encode(), "f", 97)
    assert plain.tolist() == chunked.tolist() == dictionary.tolist()


def test_unsupported_type_names_the_column() -> None:
    with pytest.raises(TypeError, match="'when'"):
        hash_column(pa.array([b"x"], pa.binary()), "when", 97)


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.text(max_size=12)), max_size=60),
    buckets=st.integers(min_value=2, max_value=10_000),
)
def test_range_and_determinism(values: list[str | None], buckets: int) -> None:
    arr = pa.array(values, pa.string())
    codes = hash_column(arr, "field", buckets)
    assert codes.dtype == np.int64 and codes.shape == (len(values),)
    assert codes.tolist() == hash_column(arr, "field", buckets).tolist()
    nulls = np.array([v is None for v in values], dtype=bool)
    assert (codes[nulls] == 0).all()
    assert ((codes[~nulls] >= 1) & (codes[~nulls] < buckets)).all()
    # equal values -> equal codes
    by_value: dict[str, int] = {}
    for v, c in zip(values, codes.tolist(), strict=True):
        if v is not None:
            assert by_value.setdefault(v, c) == c
