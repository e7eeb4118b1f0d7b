"""Input event types of the joiner and their parser (the JSON event contract, docs/streamer.md).

Topic ``lt4rec.impressions`` carries :class:`Impression`, ``lt4rec.clicks`` :class:`Click`,
``lt4rec.conversions`` :class:`Conversion`; every message is keyed by ``impression_id`` so the
three topics are co-partitioned and one joiner owns all events of an impression.

:func:`parse_event` turns raw message bytes into an event or raises :class:`InvalidEvent` with
a short ``reason`` code; the daemon routes those to the dead-letter topic and never crashes.
The field checks (:func:`decode_json`, :func:`nonempty_str`, :func:`id_value`,
:func:`event_ts`, :func:`features_of`) are shared with the online worker's example parser, so
both sides give the same reason for the same fault.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

FeatureValue = str | int | float | list[str]
EventKind = Literal["impression", "click", "conversion"]
EVENT_KINDS: tuple[EventKind, ...] = ("impression", "click", "conversion")

# Plausible event times (ms since epoch): 2000-01-01 .. 2100-01-01 UTC. Fixed bounds, not
# "now ± x", so that parsing is deterministic when historical data is replayed.
MIN_TS_MS = 946_684_800_000
MAX_TS_MS = 4_102_444_800_000

# Limits of the contract (docs/streamer.md): what the archive, the store and the sinks can hold.
MAX_ID_CHARS = 512  # impression_id, user_id, item_id
MAX_NAME_CHARS = 256  # feature names (printable characters only)
MAX_STRING_CHARS = 65_536  # one string feature value or list element
MAX_FEATURES = 256  # default of joiner.max_features
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# DLQ reason codes (the ``reason`` header of a dead-lettered message).
REASONS: tuple[str, ...] = (
    "oversize",  # message larger than kafka.max_message_bytes
    "not_utf8",  # value is not valid UTF-8
    "bad_json",  # value is not valid JSON (or has NaN / Infinity)
    "not_object",  # JSON value is not an object
    "unknown_event",  # "event" is missing or not one of impression / click / conversion
    "wrong_topic",  # a valid event type on another event type's topic
    "missing_field",  # a required field is absent
    "bad_type",  # a field has the wrong type (or is empty)
    "bad_ts",  # ts outside MIN_TS_MS .. MAX_TS_MS, or too far ahead of its record's timestamp
    "bad_id",  # an id that is too long or has NUL / a lone surrogate
    "bad_name",  # a feature name that is empty, too long or not printable
    "bad_value",  # a feature value: lone surrogate, string too long, integer beyond int64
    "too_many_features",  # more feature keys than joiner.max_features
    "wrong_key",  # the message key is not the event's impression_id (UTF-8)
)


@dataclass(frozen=True)
class Impression:
    impression_id: str
    ts: int  # event time, ms since epoch (UTC)
    user_id: str
    item_id: str
    features: dict[str, FeatureValue] = field(default_factory=dict)
    kind: EventKind = "impression"


@dataclass(frozen=True)
class Click:
    impression_id: str
    ts: int
    kind: EventKind = "click"


@dataclass(frozen=True)
class Conversion:
    impression_id: str
    ts: int
    kind: EventKind = "conversion"


Event = Impression | Click | Conversion


class InvalidEvent(ValueError):
    """An input message that breaks the event contract; ``reason`` is a short DLQ code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _reject_constant(name: str) -> Any:
    raise InvalidEvent("bad_json", f"non-finite number {name}")


_decoder = json.JSONDecoder(parse_constant=_reject_constant)
# orjson reads integers beyond 64 bits as floats (the stdlib keeps them exact): values with a
# run of 19+ digits take the stdlib path, as does everything orjson rejects.
_DIGITS = bytes(ord("0") if chr(c).isdigit() and c < 128 else ord(" ") for c in range(256))
_LONG = b"0" * 19


def _has_long_digits(raw: bytes) -> bool:
    """Whether ``raw`` has a run of 19+ ASCII digits (translate + find: ~6x a regex search)."""
    return _LONG in raw.translate(_DIGITS)


def decode_json(raw: bytes) -> tuple[Any, bool]:
    """The JSON value of ``raw`` and whether orjson decoded it (then it holds no lone
    surrogate and no integer beyond 64 bits); else the stdlib decoder's value.

    Every input orjson rejects (NaN, lone surrogates, bad UTF-8, syntax errors, deep nesting)
    goes through the stdlib path below, so errors and their reason codes are unchanged.
    """
    if not _has_long_digits(raw):
        try:
            return orjson.loads(raw), True
        except orjson.JSONDecodeError:
            pass
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent("not_utf8", str(exc)[:200]) from None
    try:
        return _decoder.decode(text), False
    except json.JSONDecodeError as exc:
        raise InvalidEvent("bad_json", str(exc)[:200]) from None
    except RecursionError:
        raise InvalidEvent("bad_json", "nesting too deep") from None
    except ValueError as exc:  # an integer literal beyond Python's 4300-digit limit
        raise InvalidEvent("bad_json", str(exc)[:200]) from None


def _surrogate(s: str) -> bool:
    """Whether ``s`` holds a lone surrogate (not a Unicode scalar value: no UTF-8 form)."""
    if s.isascii():
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_id(name: str, value: str, strict: bool) -> str:
    if len(value) > MAX_ID_CHARS:
        raise InvalidEvent("bad_id", f"{name} has {len(value)} characters > {MAX_ID_CHARS}")
    if "\x00" in value or (not strict and _surrogate(value)):
        raise InvalidEvent("bad_id", f"{name} {value[:50]!r} has NUL or a lone surrogate")
    return value


def require_field(obj: dict[str, Any], name: str) -> Any:
    if name not in obj:
        raise InvalidEvent("missing_field", name)
    return obj[name]


def nonempty_str(obj: dict[str, Any], name: str) -> str:
    value = require_field(obj, name)
    if not isinstance(value, str) or not value:
        raise InvalidEvent("bad_type", f"{name} must be a non-empty string")
    return value


def id_value(obj: dict[str, Any], name: str, strict: bool = False) -> str:
    """user_id / item_id: a non-empty string or an integer (normalised to str)."""
    value = require_field(obj, name)
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidEvent("bad_id", f"{name} is an integer beyond int64")
        return str(value)
    if isinstance(value, str) and value:
        return _check_id(name, value, strict)
    raise InvalidEvent("bad_type", f"{name} must be a non-empty string or an integer")


def event_ts(obj: dict[str, Any]) -> int:
    value = require_field(obj, "ts")
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEvent("bad_type", "ts must be an integer (ms since epoch)")
    if not MIN_TS_MS <= value < MAX_TS_MS:
        raise InvalidEvent("bad_ts", f"ts {value} outside [{MIN_TS_MS}, {MAX_TS_MS})")
    return value


def features_of(
    obj: dict[str, Any], max_features: int, strict: bool = False
) -> dict[str, FeatureValue]:
    """The feature map, checked; ``strict``: orjson decoded it (no surrogates, no big ints)."""
    value = obj.get("features", {})
    if not isinstance(value, dict):
        raise InvalidEvent("bad_type", "features must be an object")
    if len(value) > max_features:
        raise InvalidEvent("too_many_features", f"{len(value)} feature keys > {max_features}")
    for name, v in value.items():
        if not name.isprintable() or not 0 < len(name) <= MAX_NAME_CHARS:
            detail = f"feature name {name[:50]!r}: 1..{MAX_NAME_CHARS} printable characters"
            raise InvalidEvent("bad_name", detail)
        t = type(v)  # exact types: bool is not an int here
        if t is str:
            if len(v) > MAX_STRING_CHARS or (not strict and _surrogate(v)):
                raise InvalidEvent("bad_value", f"features.{name}: lone surrogate or too long")
            continue
        if t is int:
            if not strict and not INT64_MIN <= v <= INT64_MAX:
                raise InvalidEvent("bad_value", f"features.{name}: integer beyond int64")
            continue
        if t is float and math.isfinite(v):
            continue
        if t is list and all(type(x) is str for x in v):
            if v and (
                max(map(len, v)) > MAX_STRING_CHARS or (not strict and any(map(_surrogate, v)))
            ):
                raise InvalidEvent("bad_value", f"features.{name}: lone surrogate or too long")
            continue
        raise InvalidEvent("bad_type", f"features.{name} must be str, finite number or [str]")
    return value


def parse_event(
    raw: bytes, kind: EventKind, max_bytes: int | None = None, max_features: int = MAX_FEATURES
) -> Event:
    """Decode one message value from the topic of event type ``kind``.

    Raises :class:`InvalidEvent` (reason in :data:`REASONS`) for anything that breaks the
    contract; integer ``user_id`` / ``item_id`` are normalised to ``str``. Unknown extra
    keys are ignored (forward compatibility).
    """
    if max_bytes is not None and len(raw) > max_bytes:
        raise InvalidEvent("oversize", f"{len(raw)} bytes > max_message_bytes {max_bytes}")
    obj, strict = decode_json(raw)
    if not isinstance(obj, dict):
        raise InvalidEvent("not_object", f"JSON {type(obj).__name__}, expected an object")
    event_type = obj.get("event")
    if event_type not in EVENT_KINDS:
        raise InvalidEvent("unknown_event", f"event {str(event_type)[:50]!r}")
    if event_type != kind:
        raise InvalidEvent("wrong_topic", f"{event_type} event on the {kind} topic")
    impression_id = _check_id("impression_id", nonempty_str(obj, "impression_id"), strict)
    ts = event_ts(obj)
    if kind == "click":
        return Click(impression_id, ts)
    if kind == "conversion":
        return Conversion(impression_id, ts)
    user, item = id_value(obj, "user_id", strict), id_value(obj, "item_id", strict)
    return Impression(impression_id, ts, user, item, features_of(obj, max_features, strict))


def encode_event(event: Event) -> bytes:
    """The contract's JSON encoding of ``event`` (inverse of :func:`parse_event`)."""
    body: dict[str, Any] = {
        "event": event.kind,
        "impression_id": event.impression_id,
        "ts": event.ts,
    }
    if isinstance(event, Impression):
        body.update(user_id=event.user_id, item_id=event.item_id, features=event.features)
    return json.dumps(body, separators=(",", ":")).encode("utf-8")
