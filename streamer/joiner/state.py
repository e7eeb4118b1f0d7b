"""Join state of one impression id and its compact binary encoding in the store.

An id is in one of three states (``streamer.store.base``): ``PENDING`` (impression seen,
window open), ``ORPHAN`` (labels seen, impression not yet) or ``TOMBSTONE`` (finalised; kept so
duplicates and late labels are recognised until the dedup horizon passes). Held labels keep
their original message (topic, partition, offset, key, value) so that a label that is finally
lost (orphan past its grace, conversion without click) can be dead-lettered byte for byte.
Encoding (the hot path of every ``process`` call): pending impressions and tombstones are a
fixed ``struct`` header plus UTF-8 strings; held labels and orphans (rare) are a pickle of
plain lists / str / bytes read back by an unpickler that refuses every class, so stored state
can never run code.
"""

from __future__ import annotations

import io
import pickle
import struct
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from streamer.store.base import ORPHAN, PENDING, TOMBSTONE, Entry


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain data only (lists, dicts, str, bytes, numbers): no class is loadable."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"joiner state may not reference {module}.{name}")


def _dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=5)


def _loads(data: bytes) -> Any:
    return _PlainUnpickler(io.BytesIO(data)).load()


class Source(NamedTuple):
    """Where a message came from and its original bytes (for the DLQ)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    def encode(self) -> list[Any]:
        return list(self)

    @staticmethod
    def decode(raw: list[Any]) -> Source:
        return Source(*raw)


@dataclass(frozen=True)
class HeldLabel:
    """A click or conversion waiting for its impression (or, a conversion, for a click)."""

    kind: str  # "click" | "conversion"
    ts: int
    source: Source

    def encode(self) -> list[Any]:
        return [self.kind, self.ts, self.source.encode()]

    @staticmethod
    def decode(raw: list[Any]) -> HeldLabel:
        return HeldLabel(raw[0], raw[1], Source.decode(raw[2]))


@dataclass
class Pending:
    """An impression whose label is not final yet."""

    ts: int
    user_id: str
    item_id: str
    features: str  # JSON object, encoded once on arrival (see outputs.features_json)
    click_ts: int | None = None
    conversion_ts: int | None = None
    held: list[HeldLabel] = field(default_factory=list)  # conversions waiting for a click
    fresh_sent: bool = False  # policies fnw / es_dfm: the fresh example was emitted
    positives_sent: int = 0  # policies fnw / es_dfm: delayed positives emitted (0, 1, 2)


@dataclass
class Orphan:
    """Labels whose impression has not arrived (yet)."""

    labels: list[HeldLabel] = field(default_factory=list)


@dataclass
class Tombstone:
    """A finalised impression: enough to classify duplicates and late labels."""

    ts: int
    click_ts: int | None
    conversion_ts: int | None


State = Pending | Orphan | Tombstone


_NONE = -(2**63)  # int64 sentinel of a missing timestamp
# ts, click_ts, conversion_ts, fresh_sent, positives_sent, len(user), len(item), len(features)
_PENDING = struct.Struct("<qqqBBIII")
_TOMBSTONE = struct.Struct("<qqq")  # ts, click_ts, conversion_ts


def _utf8(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")  # lone surrogates round-trip too


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogatepass")


def _opt(v: int | None) -> int:
    return _NONE if v is None else v


def _unopt(v: int) -> int | None:
    return None if v == _NONE else v


def encode(iid: str, st: State, deadline: int) -> Entry:
    """The store entry of ``st`` with the given next-action deadline."""
    if isinstance(st, Pending):
        u, i, f = _utf8(st.user_id), _utf8(st.item_id), _utf8(st.features)
        head = _PENDING.pack(
            st.ts, _opt(st.click_ts), _opt(st.conversion_ts), st.fresh_sent,
            st.positives_sent, len(u), len(i), len(f),
        )  # fmt: skip
        held = _dumps([h.encode() for h in st.held]) if st.held else b""
        return Entry(iid, PENDING, deadline, b"".join((head, u, i, f, held)))
    if isinstance(st, Orphan):
        return Entry(iid, ORPHAN, deadline, _dumps([h.encode() for h in st.labels]))
    data = _TOMBSTONE.pack(st.ts, _opt(st.click_ts), _opt(st.conversion_ts))
    return Entry(iid, TOMBSTONE, deadline, data)


def decode(entry: Entry) -> State:
    """Inverse of :func:`encode` (the deadline is recomputed by the rules)."""
    data = entry.data
    if entry.state == PENDING:
        ts, ck, cv, fresh, npos, lu, li, lf = _PENDING.unpack_from(data)
        o = _PENDING.size
        user, item = _text(data[o : o + lu]), _text(data[o + lu : o + lu + li])
        o += lu + li
        feats = _text(data[o : o + lf])
        o += lf
        held = [HeldLabel.decode(h) for h in _loads(data[o:])] if len(data) > o else []
        return Pending(ts, user, item, feats, _unopt(ck), _unopt(cv), held, bool(fresh), npos)
    if entry.state == ORPHAN:
        return Orphan([HeldLabel.decode(h) for h in _loads(data)])
    if entry.state == TOMBSTONE:
        ts, ck, cv = _TOMBSTONE.unpack(data)
        return Tombstone(ts, _unopt(ck), _unopt(cv))
    raise ValueError(f"entry {entry.impression_id!r}: unknown state code {entry.state}")
