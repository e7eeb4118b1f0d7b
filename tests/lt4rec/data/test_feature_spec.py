"""FeatureSpec validation: every malformed spec fails with a message naming the problem."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lt4rec.data import DataError, FeatureSpec, SpecError


def good() -> dict[str, Any]:
    return {
        "sparse": ["user_id", "item_id"],
        "multi": ["tags"],
        "dense": ["quality"],
        "labels": {"click": "click", "conversion": "conversion"},
        "id": "impression_id",
        "time": "ts",
        "user": "user_id",
    }


def test_round_trip_through_dict_and_file(tmp_path: Path) -> None:
    spec = FeatureSpec.from_dict(good())
    assert spec.to_dict() == good()
    path = tmp_path / "spec.json"
    spec.save(path)
    assert FeatureSpec.load(path) == spec
    assert spec.required_columns == ("user_id", "item_id", "tags", "quality", "click", "conversion")


def test_optional_groups_may_be_absent_or_empty() -> None:
    data = good()
    del data["multi"], data["user"]
    data["dense"] = []
    spec = FeatureSpec.from_dict(data)
    assert spec.multi == () and spec.dense == () and spec.user is None
    assert "user" not in spec.to_dict()


# (mutation, fragment the error must contain)
BAD = [
    (lambda d: d.pop("sparse"), "missing key 'sparse'"),
    (lambda d: d.pop("labels"), "missing key 'labels'"),
    (lambda d: d.pop("id"), "missing key 'id'"),
    (lambda d: d.pop("time"), "missing key 'time'"),
    (lambda d: d["labels"].pop("conversion"), "missing key 'conversion'"),
    (lambda d: d["labels"].update(ctcvr="x"), "unknown label(s) 'ctcvr'"),
    (lambda d: d.update(extra=1), "unknown key(s) 'extra'"),
    (lambda d: d.update(sparse="user_id"), "'sparse' must be a list"),
    (lambda d: d.update(dense=[1, 2]), "'dense' must be a list"),
    (lambda d: d.update(multi=["tags", "tags"]), "duplicate column 'tags' in 'multi'"),
    (lambda d: d.update(dense=["item_id"]), "'item_id' is in two groups (sparse and dense)"),
    (lambda d: d.update(multi=["click"]), "'click' is in two groups (multi and labels)"),
    (lambda d: d.update(id=3), "'id' must be a column name"),
    (lambda d: d.update(time="click"), "time column 'click' is also a label"),
    (lambda d: d["labels"].update(conversion="click"), "both 'click'"),
    (lambda d: d.update(sparse=[], multi=[], dense=[]), "no feature columns"),
    (lambda d: d.update(sparse=[""]), "empty column name"),
]


@pytest.mark.parametrize(("mutate", "fragment"), BAD)
def test_bad_spec_names_the_problem(
    mutate: Callable[[dict[str, Any]], object], fragment: str
) -> None:
    data = good()
    mutate(data)
    with pytest.raises(SpecError) as exc:
        FeatureSpec.from_dict(data)
    assert fragment in str(exc.value)


@settings(max_examples=60, deadline=None)
@given(
    key=st.sampled_from(["sparse", "multi", "dense", "labels", "id", "time", "user"]),
    value=st.one_of(
        st.integers(),
        st.floats(allow_nan=False),
        st.booleans(),
        st.lists(st.integers(), min_size=1),
    ),
)
def test_wrong_types_always_rejected(key: str, value: object) -> None:
    data = good()
    data[key] = value
    with pytest.raises(SpecError, match=repr(key)):
        FeatureSpec.from_dict(data)


@settings(max_examples=60, deadline=None)
@given(
    cols=st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=4, unique=True),
    groups=st.permutations(["sparse", "multi", "dense"]),
)
def test_column_in_two_groups_rejected(cols: list[str], groups: list[str]) -> None:
    data = good()
    first, second = groups[:2]
    data[first] = list(dict.fromkeys([*data[first], *cols]))
    data[second] = list(dict.fromkeys([*data[second], cols[0]]))
    with pytest.raises(SpecError, match=f"'{cols[0]}'"):
        FeatureSpec.from_dict(data)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(SpecError, match=r"nope\.json does not exist"):
        FeatureSpec.load(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(SpecError, match=r"broken\.json is not valid JSON"):
        FeatureSpec.load(broken)
    bad = tmp_path / "bad.json"
    data = good()
    del data["labels"]
    bad.write_text(json.dumps(data))
    with pytest.raises(SpecError, match=r"bad.json: .*missing key 'labels'"):
        FeatureSpec.load(bad)
    arr = tmp_path / "arr.json"
    arr.write_text("[1, 2]")
    with pytest.raises(SpecError, match="must be a JSON object"):
        FeatureSpec.load(arr)


def test_check_table_names_missing_column_and_bad_types() -> None:
    spec = FeatureSpec.from_dict(good())
    schema = pa.schema(
        [
            ("user_id", pa.string()),
            ("item_id", pa.int64()),
            ("tags", pa.list_(pa.string())),
            ("quality", pa.float64()),
            ("click", pa.int64()),
            ("conversion", pa.int64()),
        ]
    )
    spec.check_table(schema, "ok.parquet")
    with pytest.raises(DataError, match=r"f.parquet: missing column\(s\) 'quality'"):
        spec.check_table(schema.remove(schema.get_field_index("quality")), "f.parquet")
    with pytest.raises(DataError, match="multi-valued column 'tags' must be a list"):
        spec.check_table(schema.set(2, pa.field("tags", pa.string())), "f.parquet")
    with pytest.raises(DataError, match="column 'quality' must be numeric"):
        spec.check_table(schema.set(3, pa.field("quality", pa.string())), "f.parquet")


def test_direct_construction_is_validated_and_normalised() -> None:
    spec = FeatureSpec(["a"], [], ["d"], "click", "conversion", "id", "ts")  # type: ignore[arg-type]
    assert spec.sparse == ("a",) and spec == FeatureSpec(
        ("a",), (), ("d",), "click", "conversion", "id", "ts"
    )
    with pytest.raises(SpecError, match="duplicate column 'a' in 'sparse'"):
        FeatureSpec(("a", "a"), (), (), "click", "conversion", "id", "ts")
    with pytest.raises(SpecError, match="'id' must be a column name"):
        FeatureSpec(("a",), (), (), "click", "conversion", 5, "ts")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="missing key 'time'"):
        FeatureSpec(("a",), (), (), "click", "conversion", "id", "")
