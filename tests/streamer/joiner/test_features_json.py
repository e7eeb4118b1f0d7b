"""features_json: orjson where it is byte-identical to the stdlib encoding, stdlib elsewhere."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.joiner.outputs import features_json

_stdlib = json.JSONEncoder(separators=(",", ":")).encode

values = (
    st.text()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.lists(st.text(), max_size=3)
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(), values, max_size=6))
def test_matches_the_stdlib_encoding(features: dict[str, Any]) -> None:
    assert features_json(features) == _stdlib(features)


@pytest.mark.parametrize(
    "value",
    [1e16, 1e-05, 0.0001, 1e15, -0.0, 5e-324, 1.7976931348623157e308, 2**64, -(2**63),
     "\x7f", "é", "\ud800", "a\nb", "\\", '"', "1e5", ["x", "\x00"]],
)  # fmt: skip
def test_edge_values_match_the_stdlib_encoding(value: Any) -> None:
    features = {"f": value, "g": 0.5}
    assert features_json(features) == _stdlib(features)
