"""Request validation and encoding: same ids and values as training's encode_table, and a
4xx RequestError naming the instance and feature for every bad input."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pyarrow as pa
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lt4rec.config import ServeConfig
from lt4rec.data import encode_table, field_schema
from lt4rec.data.hashing import BucketCache, hash_column
from lt4rec.testing.serving import SERVE_SPEC, random_instances, random_served_model, small_config
from streamer.serve.instances import InstanceEncoder, RequestError, parse_instances

CFG = small_config()
SCHEMA = field_schema(SERVE_SPEC, CFG.data)
_, NORM = random_served_model(CFG, seed=3)


def encoder(**kw) -> InstanceEncoder:
    return InstanceEncoder(SERVE_SPEC, SCHEMA, NORM, ServeConfig(**kw))


def _table(instances: list[dict]) -> pa.Table:
    """The instances as training data: one typed Arrow column per feature, null = missing."""

    def col(name):
        return [inst.get(name) for inst in instances]

    n = len(instances)
    return pa.table(
        {
            "user_id": pa.array(col("user_id"), pa.string()),
            "item_id": pa.array([None if v is None else str(v) for v in col("item_id")]),
            "hour": pa.array(col("hour"), pa.int64()),
            "tags": pa.array(col("tags"), pa.list_(pa.string())),
            "quality": pa.array(col("quality"), pa.float64()),
            "price": pa.array([None if v is None else float(v) for v in col("price")]),
            "click": pa.array(np.zeros(n)),
            "conversion": pa.array(np.zeros(n)),
        }
    )


@pytest.mark.parametrize("cache", [0, 1_000_000])
def test_encoding_matches_training_encode_table(cache):
    instances = random_instances(300, seed=1, missing=0.2)
    instances += [{"tags": [f"t{k}" for k in range(9)]}]  # longer than multi_max_len
    enc = encoder(hash_cache_size=cache)
    for _ in range(2):  # the second pass is served from the cache
        got = enc.encode(enc.validate(instances))
        want = encode_table(_table(instances), SERVE_SPEC, CFG.data, NORM)
        assert torch.equal(got.sparse, want.sparse)
        assert torch.equal(got.multi, want.multi)
        assert torch.equal(got.dense, want.dense)


def test_numbers_in_categorical_features_hash_like_training():
    # ints hash as their decimal string; integral floats like ints; others as Arrow's cast
    enc = encoder()
    got = enc.encode(enc.validate([{"hour": 7}, {"hour": 7.0}, {"hour": "7"}, {"hour": 1.5}]))
    training = hash_column(pa.array([7.0, 7.0, 7.0, 1.5]), "hour", CFG.data.hash_buckets)
    assert got.sparse[:, 2].tolist() == training.tolist()
    assert got.sparse[0, 2] == got.sparse[2, 2]


def test_bucket_cache_is_exact_and_bounded():
    values = [f"v{k}" for k in range(50)] + [None]
    want = hash_column(pa.array(values, pa.string()), "f", 97)
    cache = BucketCache("f", 97, max_size=20)
    for _ in range(3):
        assert cache.ids(values).tolist() == want.tolist()
        assert len(cache) <= 50


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{", 400, "not valid JSON"),
        (b'{"instances": [{"quality": NaN}]}', 400, "not valid JSON"),
        (b'{"instances": [{"quality": 1e999}]}', 400, "not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, 400, "not valid JSON"),
        (b"[]", 400, '{"instances"'),
        (b'{"rows": []}', 400, '{"instances"'),
        (b'{"instances": {}}', 400, "must be a list"),
        (b'{"instances": []}', 400, "empty"),
    ],
)
def test_bad_bodies_are_refused(body, status, words):
    with pytest.raises(RequestError) as info:
        parse_instances(body, 10)
    assert info.value.status == status and words in info.value.reason


def test_too_many_instances_is_413():
    with pytest.raises(RequestError) as info:
        parse_instances(orjson.dumps({"instances": [{}] * 11}), 10)
    assert info.value.status == 413 and "11 instances, at most 10" in info.value.reason


@pytest.mark.parametrize(
    ("inst", "words"),
    [
        ([1, 2], "instances[0] must be an object"),
        ({"user_id": True}, "instances[0].user_id: expected a string or a number, got bool"),
        ({"user_id": {"a": 1}}, "got object"),
        ({"user_id": ["a"]}, "got list"),
        ({"user_id": "x" * 1025}, "longer than 1024 bytes"),
        ({"user_id": "é" * 600}, "longer than 1024 bytes"),
        ({"hour": 2**64}, "integer out of range"),
        ({"quality": "0.5"}, "instances[0].quality: expected a number, got string"),
        ({"quality": [0.5]}, "got list"),
        ({"quality": False}, "got bool"),
        ({"tags": "a"}, "instances[0].tags: expected a list, got string"),
        ({"tags": [["a"]]}, "instances[0].tags[0]: expected a string or a number, got list"),
        ({"tags": [None]}, "null in a list"),
        ({"tags": ["a"] * 257}, "list longer than 256"),
    ],
)
def test_wrong_types_are_422_with_the_feature_named(inst, words):
    with pytest.raises(RequestError) as info:
        encoder().validate([inst])
    assert info.value.status in (400, 422) and words in info.value.reason


def test_non_finite_values_are_refused_even_from_python_callers():
    for v in (math.nan, math.inf, -math.inf):
        for inst in ({"quality": v}, {"hour": v}, {"tags": [v]}):
            with pytest.raises(RequestError, match="not finite") as info:
                encoder().validate([inst])
            assert info.value.status == 422


def test_huge_finite_numbers_stay_finite():
    enc = encoder()
    b = enc.encode(enc.validate([{"quality": 1e300, "price": -1.7e308}]))
    assert torch.isfinite(b.dense).all() and b.dense.abs().min() > 1e37


def test_unknown_features_ignored_or_refused_per_config():
    inst = [{"user_id": "u1", "colour": "red", "size": 3}]
    ignored = encoder(unknown_features="ignore")
    assert torch.equal(
        ignored.encode(ignored.validate(inst)).sparse,
        ignored.encode(ignored.validate([{"user_id": "u1"}])).sparse,
    )
    refused = r"instances\[0\]: unknown feature\(s\) 'colour', 'size'"
    with pytest.raises(RequestError, match=refused):
        encoder(unknown_features="refuse").validate(inst)


def test_missing_and_null_features_encode_as_training_missing_values():
    enc = encoder()
    b = enc.encode(enc.validate([{}, {"user_id": None, "tags": None, "quality": None}]))
    assert b.sparse.eq(0).all() and b.multi.eq(0).all()
    assert b.dense.eq(0).all()  # the training mean, standardised


scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
feature_names = st.sampled_from([*SERVE_SPEC.feature_columns, "other"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(feature_names, json_values, max_size=6) | json_values, max_size=4))
def test_any_json_instances_are_encoded_or_refused_with_a_4xx(instances):
    enc = encoder(unknown_features="refuse")
    try:
        cols = enc.validate(instances)
    except RequestError as exc:
        assert 400 <= exc.status < 500 and exc.reason
        return
    batch = enc.encode(cols)
    assert batch.sparse.shape == (len(instances), 3)
    assert ((batch.sparse >= 0) & (batch.sparse < CFG.data.hash_buckets)).all()
    assert torch.isfinite(batch.dense).all()


def test_float_sparse_values_keep_their_instance():
    enc = encoder()
    cols = enc.validate([{"item_id": 1.25}, {"item_id": "x"}, {"tags": ["a", 2.5, 3]}])
    assert cols.sparse[1][:2] == ["1.25", "x"]
    assert cols.multi[0][2] == ["a", "2.5", "3"]
