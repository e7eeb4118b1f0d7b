"""Building the staged outputs: examples (live stream and archive rows) and DLQ records.

Outputs are collected per sink during one transaction and numbered with the partition's
per-sink seq counters when staged, so keys are deterministic (``{impression_id}:{kind}`` or
``{impression_id}:delayed_positive:{level}``) and the outbox order is the emission order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from streamer.dlq import dlq_payload, make_headers
from streamer.joiner.state import Pending, Source
from streamer.store.base import SINKS, OutRow, Sink

# ASCII JSON: any text (even a lone surrogate from a "\ud800" escape) encodes safely.
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_str = json.encoder.encode_basestring_ascii  # a JSON string literal (C accelerated)
_EXAMPLES = {k: f"examples.{k}" for k in ("final", "fresh", "delayed_positive")}


# orjson output that may differ from ``_dumps``: exponent floats (1e+16 vs 1e16), floats below
# 1e-4 (1e-05 vs 0.00001), escapes and DEL (stdlib writes \u007f), anything non-ASCII.
_CLASSES = bytearray(b" " * 256)  # byte -> class: 0, 1 (digits 1-9), e, ., \\ (also DEL)
for _digit in b"123456789":
    _CLASSES[_digit] = ord("1")
for _byte, _cls in (("0", "0"), ("e", "e"), ("E", "e"), (".", "."), ("\\", "\\"), ("\x7f", "\\")):
    _CLASSES[ord(_byte)] = ord(_cls)
_TABLE = bytes(_CLASSES)
_UNSAFE = (b"0e", b"1e", b".0000", b"\\")  # in the class string: differs from the stdlib


def _orjson_unsafe(out: bytes) -> bool:
    """Whether ``out`` (orjson) may differ from ``_dumps``: non-ASCII or an unsafe pattern."""
    if not out.isascii():
        return True
    classes = out.translate(_TABLE)
    return any(u in classes for u in _UNSAFE)


def features_json(features: dict[str, Any]) -> str:
    """Features encoded once, when the impression arrives; spliced into every example.

    Byte-for-byte the stdlib encoding (ASCII JSON, ``,``/``:`` separators): orjson's output is
    used only when none of the patterns where the two differ occurs in it.
    """
    try:
        fast = orjson.dumps(features)
    except TypeError:  # integers beyond 64 bits, a lone surrogate, ...
        return _dumps(features)
    if not _orjson_unsafe(fast):
        return fast.decode("ascii")
    return _dumps(features)


def _int(v: int | None) -> str:
    return "null" if v is None else str(v)


def example(
    iid: str,
    p: Pending,
    kind: str,
    label_ts: int,
    click_ts: int | None,
    conversion_ts: int | None,
) -> bytes:
    """The example JSON (design doc "Outputs"); click / conversion follow their timestamps.

    Field order: impression_id, kind, ts, label_ts, user_id, item_id, features, click,
    conversion, click_ts, conversion_ts. Built from pre-encoded parts: this is the hot path.
    """
    return (
        f'{{"impression_id":{_str(iid)},"kind":"{kind}","ts":{p.ts},"label_ts":{label_ts},'
        f'"user_id":{_str(p.user_id)},"item_id":{_str(p.item_id)},"features":{p.features},'
        f'"click":{int(click_ts is not None)},"conversion":{int(conversion_ts is not None)},'
        f'"click_ts":{_int(click_ts)},"conversion_ts":{_int(conversion_ts)}}}'
    ).encode("ascii")


@dataclass
class Collector:
    """Outputs and counter increments produced by one transaction (seq assigned at staging)."""

    max_bytes: int = 1_000_000  # kafka.max_message_bytes: DLQ copies above it are truncated
    items: dict[str, list[OutRow]] = field(default_factory=lambda: {s: [] for s in SINKS})
    counters: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def emit(self, iid: str, key: str, kind: str, value: bytes, archive: bool = False) -> None:
        """Stage an example for the live stream (and, if ``archive``, as the archive row)."""
        self.items["examples"].append((key.encode(), value, []))
        name, c = _EXAMPLES.get(kind) or f"examples.{kind}", self.counters
        c[name] = c.get(name, 0) + 1
        if archive:
            self.archive(iid, value)

    def archive(self, iid: str, value: bytes) -> None:
        """Stage the one ``final`` archive row of an impression."""
        self.items["archive"].append((f"{iid}:final".encode(), value, []))
        c = self.counters
        c["archived"] = c.get("archived", 0) + 1

    def dlq(self, src: Source, reason: str, detail: str = "") -> None:
        """Dead-letter the original message with its reason (design doc "Outputs")."""
        headers = make_headers(reason, detail, src.topic, src.partition, src.offset)
        key, value, extra = dlq_payload(src.key or b"", src.value, self.max_bytes)
        self.items["dlq"].append((key, value, headers + extra))
        self.count(f"dlq.{reason}")

    def drain(self, seqs: dict[str, int]) -> dict[Sink, tuple[int, list[OutRow]]]:
        """Hand over the collected rows per sink with their first seq (``seqs`` advances)."""
        out: dict[Sink, tuple[int, list[OutRow]]] = {}
        for sink in SINKS:
            rows = self.items[sink]
            if not rows:
                continue
            start = seqs.get(sink, 0)
            out[sink] = (start, rows)
            seqs[sink] = start + len(rows)
            self.items[sink] = []
        return out
