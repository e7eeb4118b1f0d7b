# mypy: allow-untyped-defs
"""Example records: the contract, the DLQ reasons, and encoding equal to the offline path."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
import torch

from checkpoints import load_checkpoint
from lt4rec.data import FeatureSpec, Normalizer
from lt4rec.data.encode import encode_table
from lt4rec.train.delayed import KIND_CODES
from streamer.delivery import ORIGIN_POLICY, origin_headers
from streamer.events import InvalidEvent
from streamer.replay import read_table
from streamer.worker.encode import ExampleEncoder
from streamer.worker.examples import SpecColumns, parse_example


@pytest.fixture(scope="module")
def model_ckpt(base_ckpt):
    return load_checkpoint(base_ckpt)


@pytest.fixture(scope="module")
def encoder(model_ckpt):
    spec = FeatureSpec.from_dict(model_ckpt.spec)
    return ExampleEncoder(
        spec, Normalizer.from_dict(model_ckpt.normalizer), model_ckpt.field_schema()
    )


def _parse(encoder, row, value=None, headers=None, policy="wait_full", offset=7):
    return parse_example(
        2, offset, row.key, row.value if value is None else value,
        row.headers() if headers is None else headers, policy, encoder.columns,
    )  # fmt: skip


def test_a_valid_example_keeps_its_origin_and_columns(encoder, examples):
    row = examples[5]
    ex = _parse(encoder, row)
    body = json.loads(row.value)
    assert (ex.partition, ex.offset, ex.source, ex.seq) == (2, 7, row.src, row.seq)
    assert (
        ex.kind == KIND_CODES["final"] and ex.ts == body["ts"] and ex.label_ts == body["label_ts"]
    )
    values = dict(zip(encoder.columns.names, ex.values, strict=True))
    assert values["user_id"] == body["user_id"] and values["click"] == body["click"]
    assert values["item_tags"] == body["features"]["item_tags"]


def _mutate(value: bytes, **changes) -> bytes:
    body = json.loads(value)
    for k, v in changes.items():
        if k.startswith("f_"):
            body["features"][k[2:]] = v
        elif v is _DROP:
            del body[k]
        else:
            body[k] = v
    return json.dumps(body).encode()


_DROP = object()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"value": b"{oops"}, "bad_json"),
        ({"value": b"\xff\xfe"}, "not_utf8"),
        ({"value": b"[1, 2]"}, "not_object"),
        ({"drop": "label_ts"}, "missing_field"),
        ({"set": {"kind": "later"}}, "bad_type"),
        ({"set": {"ts": -5}}, "bad_ts"),
        ({"set": {"user_id": ""}}, "bad_type"),
        ({"set": {"features": [1]}}, "bad_type"),
        ({"set": {"click": 2}}, "bad_label"),
        ({"set": {"conversion": True}}, "bad_label"),
        ({"set": {"f_item_tags": "not-a-list"}}, "bad_feature"),
        ({"set": {"f_user_activity": "high"}}, "bad_feature"),
        ({"set": {"f_creator": ["a", "b"]}}, "bad_feature"),
        ({"headers": []}, "missing_origin"),
        (
            {
                "headers": [
                    ("lt4rec.partition", b"x1"),
                    ("lt4rec.seq", b"3"),
                    (ORIGIN_POLICY, b"wait_full"),
                ]
            },
            "bad_origin",
        ),
        ({"headers": origin_headers(1, 2, b"fnw")}, "wrong_policy"),
    ],
)
def test_malformed_examples_name_their_reason(encoder, examples, change, reason):
    row = examples[0]
    value = change.get("value")
    if "drop" in change:
        value = _mutate(row.value, **{change["drop"]: _DROP})
    if "set" in change:
        value = _mutate(row.value, **change["set"])
    with pytest.raises(InvalidEvent) as err:
        _parse(encoder, row, value=value, headers=change.get("headers"))
    assert err.value.reason == reason


def test_a_missing_feature_is_null_like_in_the_archive(encoder, examples):
    body = json.loads(examples[3].value)
    del body["features"]["creator"]
    ex = _parse(encoder, examples[3], value=json.dumps(body).encode())
    assert dict(zip(encoder.columns.names, ex.values, strict=True))["creator"] is None


def test_online_encoding_equals_the_offline_encoding_of_the_same_rows(encoder, examples, sim_dir):
    """The examples of the simulated log, encoded by the worker, give the tensors that
    ``encode_table`` gives for the simulator's Parquet rows (same spec, normalizer, buckets)."""
    parsed = [_parse(encoder, r, offset=i) for i, r in enumerate(examples[:700])]
    batch, meta = encoder.encode(parsed)
    table, _ = read_table(sim_dir)
    ids = [json.loads(r.value)["impression_id"] for r in examples[:700]]
    by_id = {iid: i for i, iid in enumerate(table.column("impression_id").to_pylist())}
    rows = table.take(pa.array([by_id[i] for i in ids]))
    spec = encoder.spec
    # labels: the examples carry window-rule labels (here the simulator's own columns agree)
    ref = encode_table(rows, spec, encoder.data_cfg, encoder.normalizer)
    torch.testing.assert_close(batch.sparse, ref.sparse, rtol=0, atol=0)
    torch.testing.assert_close(batch.multi, ref.multi, rtol=0, atol=0)
    torch.testing.assert_close(batch.dense, ref.dense, rtol=0, atol=0)
    torch.testing.assert_close(batch.user, ref.user, rtol=0, atol=0)
    assert torch.equal(batch.click, ref.click)
    assert meta.kind.tolist() == [KIND_CODES["final"]] * 700
    want = [
        (json.loads(r.value)["label_ts"] - json.loads(r.value)["ts"]) / 1000 for r in examples[:700]
    ]
    torch.testing.assert_close(meta.elapsed_s, torch.tensor(want, dtype=torch.float32))


def test_mixed_sparse_types_hash_like_their_text(encoder, examples):
    a = _parse(encoder, examples[1], value=_mutate(examples[1].value, f_age_bucket=3))
    b = _parse(encoder, examples[2], value=_mutate(examples[2].value, f_age_bucket="3"))
    batch, _ = encoder.encode([a, b])
    j = list(encoder.spec.sparse).index("age_bucket")
    assert batch.sparse[0, j] == batch.sparse[1, j] != 0


def test_spec_columns_follow_the_archive_flattening():
    spec = FeatureSpec(
        sparse=("user_id", "feature_kind", "city"), multi=(), dense=("score",),
        click="click", conversion="conversion", id="impression_id", time="ts",
    )  # fmt: skip
    cols = SpecColumns.of(spec)
    keys = dict(zip(cols.names, cols.keys, strict=True))
    assert keys["user_id"] == (False, "user_id")
    assert keys["feature_kind"] == (True, "kind")  # a feature named like an example field
    assert keys["city"] == (True, "city") and keys["click"] == (False, "click")
