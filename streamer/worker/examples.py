"""One example record of ``topics.examples`` -> a validated :class:`Example`, or a DLQ reason.

The worker trains only on examples that keep the joiner's contract (docs/streamer.md
"Examples and labels") *and* that the model's feature spec can encode. Anything else raises
:class:`~streamer.events.InvalidEvent` with a short reason; the worker dead-letters the record
(headers as the joiner's, :mod:`streamer.dlq`) and moves on: never trained on, never fatal.

Reasons (besides the event parser's ``oversize``, ``not_utf8``, ``bad_json``, ``not_object``,
``missing_field``, ``bad_type``, ``bad_ts``):

==================  ===============================================================
``missing_origin``  a ``lt4rec.partition`` / ``lt4rec.seq`` / ``lt4rec.policy`` header is absent
``bad_origin``      an origin header is not a non-negative decimal integer
``wrong_policy``    ``lt4rec.policy`` differs from the worker's ``joiner.policy``
``bad_label``       ``click`` / ``conversion`` is not exactly 0 or 1
``bad_feature``     a feature of the spec has a value it cannot encode (e.g. a list in a
                    sparse column, text in a dense one)
==================  ===============================================================

Only the columns of the spec are read and checked (the joiner validated every feature of the
impression already). Column lookup follows the archive's flattening
(:mod:`streamer.archive.schema`): the example's own fields (``user_id``, ``click``...) by
name, every other spec column from ``features``, and ``feature_<name>`` for a feature named
like an example field. A feature that is absent is null, as in the archive (hashed to the
padding id, or imputed for dense columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lt4rec.data.spec import FeatureSpec
from lt4rec.train.delayed import KIND_CODES
from streamer.archive.schema import BASE_NAMES, feature_of_column
from streamer.delivery import ORIGIN_PARTITION, ORIGIN_POLICY, ORIGIN_SEQ
from streamer.events import (
    InvalidEvent,
    decode_json,
    event_ts,
    id_value,
    nonempty_str,
    require_field,
)

WORKER_REASONS = ("missing_origin", "bad_origin", "wrong_policy", "bad_label", "bad_feature")


@dataclass(frozen=True, slots=True)
class Example:
    """One valid example: where it came from and the spec's column values, in order."""

    partition: int  # examples-topic partition
    offset: int
    source: int  # join partition that staged it (lt4rec.partition)
    seq: int  # its outbox seq in that join partition (lt4rec.seq)
    kind: int  # KIND_CODES of the example kind
    ts: int  # impression event time, ms
    label_ts: int  # event time the label was decided, ms
    values: tuple[Any, ...]  # SpecColumns.names order
    key: bytes | None = None  # the record's key and value, for a dead letter after all
    raw: bytes = b""


_ALLOWED = {"sparse": (str, int, float), "multi": (list,), "dense": (int, float), "label": ()}


@dataclass(frozen=True)
class SpecColumns:
    """Where each column a feature spec needs comes from in an example, and its group."""

    names: tuple[str, ...]  # spec.required_columns order
    groups: tuple[str, ...]  # "sparse" | "multi" | "dense" | "label", per name
    keys: tuple[tuple[bool, str], ...]  # (from features?, key), per name
    # (name, group, from features?, key, allowed value types) per name: the parser's loop
    plan: tuple[tuple[str, str, bool, str, tuple[type, ...]], ...] = ()

    @classmethod
    def of(cls, spec: FeatureSpec) -> SpecColumns:
        group = {c: "sparse" for c in spec.sparse}
        group |= {c: "multi" for c in spec.multi} | {c: "dense" for c in spec.dense}
        group |= {spec.click: "label", spec.conversion: "label"}
        names = spec.required_columns
        keys = []
        for c in names:
            if c in BASE_NAMES:
                keys.append((False, c))
            else:  # the archive's column of a feature (injective): back to its name
                keys.append((True, feature_of_column(c)))
        groups = tuple(group.get(c, "sparse") for c in names)
        plan = tuple(
            (n, g, f, k, _ALLOWED[g]) for n, g, (f, k) in zip(names, groups, keys, strict=True)
        )
        return cls(names, groups, tuple(keys), plan)


_ORIGIN = (ORIGIN_PARTITION, ORIGIN_SEQ, ORIGIN_POLICY)


def origin(headers: Sequence[tuple[str, bytes]], policy: str) -> tuple[int, int]:
    """``(join partition, seq)`` of an example's origin headers; checks its policy."""
    found = dict(headers)  # a later duplicate header wins, as in a Kafka header lookup
    missing = [h for h in _ORIGIN if h not in found]
    if missing:
        raise InvalidEvent("missing_origin", f"no header(s) {', '.join(missing)}")
    nums = []
    for h in (ORIGIN_PARTITION, ORIGIN_SEQ):
        raw = bytes(found[h])
        if not raw.isdigit() or len(raw) > 18:
            raise InvalidEvent("bad_origin", f"{h} = {raw[:40]!r} is not a decimal integer")
        nums.append(int(raw))
    got = found[ORIGIN_POLICY]
    if got != policy.encode():
        text = bytes(got).decode("utf-8", "replace")
        raise InvalidEvent(
            "wrong_policy", f"emitted under {text[:40]!r}, worker expects {policy!r}"
        )
    return nums[0], nums[1]


def _label(obj: dict[str, Any], name: str) -> int:
    value = require_field(obj, name)
    if type(value) is not int or value not in (0, 1):
        raise InvalidEvent("bad_label", f"{name} must be 0 or 1, got {str(value)[:40]}")
    return value


def _int_or_none(obj: dict[str, Any], name: str) -> None:
    value = obj.get(name)
    if value is not None and type(value) is not int:
        raise InvalidEvent("bad_type", f"{name} must be an integer or null")


def _bad_value(name: str, group: str, value: Any) -> InvalidEvent:
    t = type(value).__name__
    if group == "multi" and type(value) is list:
        return InvalidEvent("bad_feature", f"multi column {name!r} must hold strings only")
    return InvalidEvent("bad_feature", f"{group} column {name!r} cannot encode a {t}")


def parse_example(
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    policy: str,
    columns: SpecColumns,
    max_bytes: int | None = None,
) -> Example:
    """Validate one record of the examples topic (raises :class:`InvalidEvent`)."""
    source, seq = origin(headers, policy)
    raw = value if value is not None else b""
    if max_bytes is not None and len(raw) > max_bytes:
        raise InvalidEvent("oversize", f"{len(raw)} bytes > max_message_bytes {max_bytes}")
    obj, strict = decode_json(raw)
    if not isinstance(obj, dict):
        raise InvalidEvent("not_object", f"JSON {type(obj).__name__}, expected an object")
    nonempty_str(obj, "impression_id")
    kind_name = require_field(obj, "kind")
    kind = KIND_CODES.get(kind_name) if type(kind_name) is str else None
    if kind is None:
        raise InvalidEvent("bad_type", f"kind must be one of {', '.join(KIND_CODES)}")
    ts = event_ts(obj)
    label_ts = require_field(obj, "label_ts")
    if type(label_ts) is not int:
        raise InvalidEvent("bad_type", "label_ts must be an integer (ms since epoch)")
    obj["user_id"] = id_value(obj, "user_id", strict)
    obj["item_id"] = id_value(obj, "item_id", strict)
    feats = obj.get("features", {})
    if type(feats) is not dict:  # values outside the spec are never read, so never checked
        raise InvalidEvent("bad_type", "features must be an object")
    _label(obj, "click")
    _label(obj, "conversion")
    _int_or_none(obj, "click_ts")
    _int_or_none(obj, "conversion_ts")
    values = []
    for name, group, in_features, col, allowed in columns.plan:
        v = feats.get(col) if in_features else obj.get(col)
        if v is not None:
            if group == "label":
                v = _label(feats, col) if in_features else v
            elif type(v) not in allowed or (
                group == "multi" and not all(type(x) is str for x in v)
            ):
                raise _bad_value(name, group, v)
        elif group == "label":
            raise InvalidEvent("missing_field", name)
        values.append(v)
    return Example(partition, offset, source, seq, kind, ts, label_ts, tuple(values), key, raw)
