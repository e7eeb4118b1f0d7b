"""parse_event's orjson fast path agrees with the stdlib decoder on every input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer import events
from streamer.events import EVENT_KINDS, InvalidEvent, parse_event

TS = 1_793_491_200_000


def _stdlib(raw: bytes, kind: Any) -> Any:
    """parse_event with the fast path disabled (every value takes the stdlib decoder)."""
    check = events._has_long_digits
    events._has_long_digits = lambda _raw: True  # every value takes the stdlib path
    try:
        return _outcome(raw, kind)
    finally:
        events._has_long_digits = check


def _outcome(raw: bytes, kind: Any) -> Any:
    try:
        return parse_event(raw, kind)
    except InvalidEvent as exc:
        return ("invalid", exc.reason)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


_IMP = '{"event":"impression","impression_id":"a","ts":TS,"user_id":1,"item_id":2'
EDGE_CASES = [
    '{"event":"impression","impression_id":"\\ud800","ts":TS,"user_id":1,"item_id":2}',
    '{"event":"click","impression_id":"a","ts":TS0000000000}',  # beyond 64 bits
    '{"event":"click","impression_id":"a","ts":123456789012345678901234}',
    _IMP + ',"features":{"x":1e400}}',
    _IMP + ',"features":{"x":NaN}}',
    _IMP + ',"features":{"x":12345678901234567890123}}',
    '{"event":"impression","impression_id":"a","ts":TS,"user_id":99999999999999999999,"item_id":2}',
    '{"event":"click","impression_id":"a","ts":TS,"event":"conversion"}',
    '[{"event":"click"}]',
    '{"event":"click","impression_id":"a","ts":1.5e12}',
    "\ufeff{}",
]


@pytest.mark.parametrize("text", [t.replace("TS", str(TS)) for t in EDGE_CASES])
@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_edge_cases_match_the_stdlib_decoder(text: str, kind: Any) -> None:
    raw = text.encode("utf-8", "surrogatepass")
    assert _outcome(raw, kind) == _stdlib(raw, kind)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["event", "impression_id", "ts", "user_id", "item_id", "features", "x"]),
        json_values,
    ),
    st.sampled_from(EVENT_KINDS),
)
def test_random_objects_match_the_stdlib_decoder(body: dict[str, Any], kind: Any) -> None:
    body.setdefault("event", kind)
    raw = json.dumps(body).encode()
    fast, slow = _outcome(raw, kind), _stdlib(raw, kind)
    assert fast == slow or (repr(fast) == repr(slow))  # NaN features compare unequal


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.sampled_from(EVENT_KINDS))
def test_random_bytes_match_the_stdlib_decoder(raw: bytes, kind: Any) -> None:
    assert _outcome(raw, kind) == _stdlib(raw, kind)


@pytest.mark.parametrize(
    ("raw", "long"),
    [(b"1" * 19, True), (b"x" + b"0" * 19 + b"y", True), (b"1" * 18, False),
     (b"123456789.123456789", False), ("１".encode() * 20, False), (b"", False)],
)  # fmt: skip
def test_long_digit_runs_are_found(raw: bytes, long: bool) -> None:
    assert events._has_long_digits(raw) is long


def test_valid_events_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = b'{"event":"click","impression_id":"a","ts":%d}' % TS

    def fail(_text: str) -> Any:
        raise AssertionError("stdlib decoder used for a plain valid event")

    monkeypatch.setattr(events._decoder, "decode", fail)
    assert parse_event(raw, "click") == events.Click("a", TS)
