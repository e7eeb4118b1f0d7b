"""parse_event: the JSON event contract and its DLQ reason codes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamer.events import (
    MAX_TS_MS,
    MIN_TS_MS,
    REASONS,
    Click,
    Conversion,
    Impression,
    InvalidEvent,
    encode_event,
    parse_event,
)

TS = 1_793_491_200_000  # 2026-11-01


def _raw(**body) -> bytes:
    return json.dumps(body).encode()


def _imp(**over) -> dict:
    body = {
        "event": "impression",
        "impression_id": "i1",
        "ts": TS,
        "user_id": 7,
        "item_id": "v9",
        "features": {"city": "x", "age": 3, "score": 0.5, "tags": ["a"]},
    }
    body.update(over)
    return body


def _reason(raw: bytes, kind="impression", max_bytes=None) -> str:
    with pytest.raises(InvalidEvent) as info:
        parse_event(raw, kind, max_bytes)
    assert info.value.reason in REASONS
    return info.value.reason


def test_valid_events_parse_and_ids_are_normalised() -> None:
    imp = parse_event(_raw(**_imp()), "impression")
    assert imp == Impression(
        "i1", TS, "7", "v9", {"city": "x", "age": 3, "score": 0.5, "tags": ["a"]}
    )
    click = parse_event(_raw(event="click", impression_id="i1", ts=TS + 5), "click")
    assert click == Click("i1", TS + 5)
    conv = parse_event(_raw(event="conversion", impression_id="i1", ts=TS + 9), "conversion")
    assert conv == Conversion("i1", TS + 9)


@pytest.mark.parametrize(
    ("raw", "kind", "reason"),
    [
        (b"\xff\xfe{}", "click", "not_utf8"),
        (b"{not json", "click", "bad_json"),
        (b'{"event":"click","impression_id":"a","ts":NaN}', "click", "bad_json"),
        (b"[1, 2]", "click", "not_object"),
        (b'{"event":"purchase","impression_id":"a","ts":1}', "click", "unknown_event"),
        (b'{"impression_id":"a","ts":1}', "click", "unknown_event"),
        (b'{"event":"click","impression_id":"a","ts":1793491200000}', "impression", "wrong_topic"),
        (b'{"event":"click","ts":1793491200000}', "click", "missing_field"),
        (b'{"event":"click","impression_id":"a"}', "click", "missing_field"),
        (b'{"event":"click","impression_id":"","ts":1793491200000}', "click", "bad_type"),
        (b'{"event":"click","impression_id":5,"ts":1793491200000}', "click", "bad_type"),
        (b'{"event":"click","impression_id":"a","ts":"1793491200000"}', "click", "bad_type"),
        (b'{"event":"click","impression_id":"a","ts":1.5e12}', "click", "bad_type"),
        (b'{"event":"click","impression_id":"a","ts":true}', "click", "bad_type"),
        (b'{"event":"click","impression_id":"a","ts":-5}', "click", "bad_ts"),
        (b'{"event":"click","impression_id":"a","ts":99999999999999999}', "click", "bad_ts"),
    ],
)
def test_malformed_messages_get_their_reason(raw: bytes, kind, reason: str) -> None:
    assert _reason(raw, kind) == reason


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"user_id": None}, "bad_type"),
        ({"user_id": True}, "bad_type"),
        ({"item_id": 1.5}, "bad_type"),
        ({"features": [1]}, "bad_type"),
        ({"features": {"f": None}}, "bad_type"),
        ({"features": {"f": [1, 2]}}, "bad_type"),
        ({"features": {"f": {"x": 1}}}, "bad_type"),
        ({"features": {"f": False}}, "bad_type"),
    ],
)
def test_bad_impression_fields(over: dict, reason: str) -> None:
    assert _reason(_raw(**_imp(**over))) == reason


def test_missing_user_id() -> None:
    body = _imp()
    del body["user_id"]
    assert _reason(_raw(**body)) == "missing_field"


def test_oversize_is_checked_before_decoding() -> None:
    raw = _raw(**_imp(features={"blob": "x" * 500}))
    assert _reason(raw, max_bytes=100) == "oversize"
    assert isinstance(parse_event(raw, "impression", max_bytes=len(raw)), Impression)


@given(st.binary(max_size=64), st.sampled_from(["impression", "click", "conversion"]))
def test_arbitrary_bytes_never_crash(raw: bytes, kind) -> None:
    try:
        parse_event(raw, kind)
    except InvalidEvent as exc:
        assert exc.reason in REASONS


# ids without NUL and lone surrogates (both are bad_id, tested in test_events_limits)
IDS = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1, max_size=20
)
NOT_PRINTABLE = ["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"]
NAMES = st.text(st.characters(blacklist_categories=NOT_PRINTABLE), min_size=1, max_size=6)


@given(
    IDS,
    st.integers(MIN_TS_MS, MAX_TS_MS - 1),
    st.one_of(st.integers(0, 10**9), IDS),
    st.dictionaries(
        NAMES,
        st.one_of(
            st.text(max_size=5),
            st.integers(-(2**63), 2**63 - 1),
            st.floats(allow_nan=False, allow_infinity=False),
            st.lists(st.text(max_size=4), max_size=3),
        ),
        max_size=4,
    ),
)
def test_encode_parse_round_trip(iid: str, ts: int, user, feats) -> None:
    imp = Impression(iid, ts, str(user), "item", feats)
    assert parse_event(encode_event(imp), "impression") == imp
    click = Click(iid, ts)
    assert parse_event(encode_event(click), "click") == click
