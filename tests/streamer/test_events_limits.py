"""The contract's limits (ids, names, values, feature count) and the envelope checks
(key = impression_id, bounded future skew): each violation has its own DLQ reason."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from kafka import TopicPartition

from lt4rec.config import JoinerConfig
from streamer.events import (
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_STRING_CHARS,
    REASONS,
    Click,
    InvalidEvent,
    parse_event,
)
from streamer.intake import Limits, check_envelope, source_records

TS = 1_793_491_200_000


def _imp(features: object = None, **over: object) -> bytes:
    body = {"event": "impression", "impression_id": "i1", "ts": TS, "user_id": "u", "item_id": 1,
            "features": {"f": 1} if features is None else features, **over}  # fmt: skip
    return json.dumps(body).encode()


def _reason(raw: bytes, max_features: int = 256) -> str:
    with pytest.raises(InvalidEvent) as info:
        parse_event(raw, "impression", max_features=max_features)
    assert info.value.reason in REASONS
    info.value.detail.encode("utf-8")  # details are always valid text (DLQ headers)
    return info.value.reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (_imp({"\ud800": "s"}), "bad_name"),
        (_imp({"": 1}), "bad_name"),
        (_imp({"a\nb": 1}), "bad_name"),
        (_imp({"x" * (MAX_NAME_CHARS + 1): 1}), "bad_name"),
        (_imp({"s": "a\udc00b"}), "bad_value"),
        (_imp({"s": ["ok", "\ud83d"]}), "bad_value"),
        (_imp({"s": "x" * (MAX_STRING_CHARS + 1)}), "bad_value"),
        (_imp({"big": 2**63}), "bad_value"),
        (_imp({"small": -(2**63) - 1}), "bad_value"),
        (_imp().replace(b'"f": 1', b'"f": ' + b"1" * 401), "bad_value"),
        (_imp().replace(b'"f": 1', b'"f": ' + b"7" * 5000), "bad_json"),  # beyond 4300 digits
        (_imp(impression_id="a\x00b"), "bad_id"),
        (_imp(impression_id="\udfff"), "bad_id"),
        (_imp(impression_id="i" * (MAX_ID_CHARS + 1)), "bad_id"),
        (_imp(user_id="u" * (MAX_ID_CHARS + 1)), "bad_id"),
        (_imp(item_id=2**64), "bad_id"),
        (_imp({f"k{i}": i for i in range(257)}), "too_many_features"),
    ],
)
def test_limits_have_their_reason(raw: bytes, reason: str) -> None:
    assert _reason(raw) == reason


def test_limits_at_their_bound_are_accepted() -> None:
    feats = {"x" * MAX_NAME_CHARS: "y" * MAX_STRING_CHARS, "big": 2**63 - 1, "neg": -(2**63),
             "k é 中": ["a"], **{f"k{i}": i for i in range(252)}}  # fmt: skip
    imp = parse_event(_imp(feats, impression_id="i" * MAX_ID_CHARS), "impression")
    assert len(imp.features) == 256
    assert _reason(_imp({"a": 1, "b": 2}), max_features=1) == "too_many_features"


def test_envelope_wrong_key_and_future_skew() -> None:
    ev = Click("i1", TS)
    check_envelope(ev, b"i1", TS, TS + 10, 0)  # exact key, ts == record time: fine
    for key in (None, b"", b"i2", b"i1 "):
        with pytest.raises(InvalidEvent) as info:
            check_envelope(ev, key, TS, TS, 3_600_000)
        assert info.value.reason == "wrong_key"
    check_envelope(ev, b"i1", TS - 3_600_000, TS, 3_600_000)  # exactly the allowed skew
    for record_ts, now in ((TS - 3_600_001, TS), (TS + 10**9, TS - 3_600_001), (-1, TS - 4e6)):
        with pytest.raises(InvalidEvent) as info:
            check_envelope(ev, b"i1", record_ts, int(now), 3_600_000)
        assert info.value.reason == "bad_ts"  # a future record timestamp does not help


def test_source_records_never_raise_and_skip_unowned_partitions() -> None:
    imp, clk = TopicPartition("imp", 0), TopicPartition("clk", 1)
    far = json.dumps({"event": "click", "impression_id": "a", "ts": 4_000_000_000_000}).encode()

    def rec(off: int, key: bytes | None, value: bytes | None) -> SimpleNamespace:
        return SimpleNamespace(offset=off, key=key, value=value, timestamp=TS)

    batch = {
        imp: [rec(0, b"i1", _imp()), rec(1, b"zz", _imp()), rec(2, None, None),
              rec(3, b"i1", _imp().replace(b"1}", b"1" * 5000 + b"}"))],
        clk: [rec(0, b"a", far)],
        TopicPartition("clk", 2): [rec(0, b"a", far)],  # not owned: left out
    }  # fmt: skip
    counts: dict[str, int] = {"impression": 0, "click": 0, "invalid": 0}
    limits = Limits(1_000_000, JoinerConfig(), clock=lambda: TS / 1000)
    out = source_records(batch, {"imp": "impression", "clk": "click"}, {0, 1}, limits, counts)
    assert sorted(out) == [0, 1]
    got = [(r.offset, r.event is not None, r.error.reason if r.error else None) for r in out[0]]
    assert got == [(0, True, None), (1, False, "wrong_key"), (2, False, "bad_json"),
                   (3, False, "bad_json")]  # fmt: skip
    assert [r.error.reason for r in out[1] if r.error] == ["bad_ts"]
    assert counts == {"impression": 1, "click": 0, "invalid": 4}
