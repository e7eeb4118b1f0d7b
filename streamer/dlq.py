"""The dead-letter topic (``lt4rec.dlq``): header layout and reading it back.

A DLQ record keeps the original message bytes as its value and key, and says why and where
it came from in headers (all UTF-8)::

    reason            short code from streamer.events.REASONS (or "late_impression")
    detail            human-readable detail (truncated to 500 characters)
    source_topic      input topic of the original message
    source_partition  its partition (decimal)
    source_offset     its offset (decimal)

A message larger than ``kafka.max_message_bytes`` (key + value) cannot be copied whole: the
broker accepted it, but its copy plus headers may exceed what the DLQ topic takes, and a DLQ
record the broker refuses would stop its partition for good. Its DLQ record keeps the first
bytes of the value and key (:func:`dlq_payload`) with three more headers::

    truncated             "1"
    original_bytes        length of the original value (decimal)
    original_sha256       SHA-256 of the original value (hex)

The join engine stages DLQ outputs with these headers in the outbox; the daemon produces them
like examples. :func:`read_dlq` is for tools and tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

HEADERS = ("reason", "detail", "source_topic", "source_partition", "source_offset")
MAX_DETAIL = 500
VALUE_PREFIX = 65_536  # bytes of an oversize value kept in its DLQ record (at most)
KEY_PREFIX = 1_024  # bytes of an oversize key kept


def dlq_payload(
    key: bytes, value: bytes, max_bytes: int
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """The key and value a DLQ record keeps of a message, plus the headers saying how.

    Whole when ``len(key) + len(value) <= max_bytes``; else prefixes (at most a quarter of
    ``max_bytes`` for the key, half for the value) and ``truncated`` / ``original_bytes`` /
    ``original_sha256`` headers, so the record always fits where the inputs fit.
    """
    if len(key) + len(value) <= max_bytes:
        return key, value, []
    extra = [
        ("truncated", b"1"),
        ("original_bytes", b"%d" % len(value)),
        ("original_sha256", hashlib.sha256(value).hexdigest().encode("ascii")),
    ]
    keep_key = key[: min(KEY_PREFIX, max_bytes // 4)]
    return keep_key, value[: min(VALUE_PREFIX, max_bytes // 2)], extra


def make_headers(
    reason: str, detail: str, topic: str, partition: int, offset: int
) -> list[tuple[str, bytes]]:
    """Kafka headers of a DLQ record (the order of :data:`HEADERS`)."""
    return [
        ("reason", reason.encode("utf-8")),
        ("detail", detail[:MAX_DETAIL].encode("utf-8", "replace")),
        ("source_topic", topic.encode("utf-8")),
        ("source_partition", str(partition).encode("ascii")),
        ("source_offset", str(offset).encode("ascii")),
    ]


def header(headers: Sequence[tuple[str, bytes]], name: str, default: str = "") -> str:
    """One header as text (``default`` when absent)."""
    for key, value in headers:
        if key == name:
            return value.decode("utf-8", "replace")
    return default


@dataclass(frozen=True)
class DlqRecord:
    """A dead-lettered message as read back from the DLQ topic."""

    reason: str
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    value: bytes  # the original bytes, or their first bytes when ``truncated``
    truncated: bool = False
    original_bytes: int | None = None  # length of the original value (when truncated)
    original_sha256: str = ""  # hex SHA-256 of the original value (when truncated)

    def original_digest(self) -> str:
        """Hex SHA-256 of the original value (whole or truncated)."""
        return self.original_sha256 or hashlib.sha256(self.value).hexdigest()

    @classmethod
    def from_message(
        cls, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]]
    ) -> DlqRecord:
        missing = [h for h in HEADERS if not any(k == h for k, _ in headers)]
        if missing:
            raise ValueError(f"DLQ record lacks header(s) {', '.join(missing)}")
        return cls(
            reason=header(headers, "reason"),
            detail=header(headers, "detail"),
            source_topic=header(headers, "source_topic"),
            source_partition=int(header(headers, "source_partition")),
            source_offset=int(header(headers, "source_offset")),
            key=key,
            value=value,
            truncated=header(headers, "truncated") == "1",
            original_bytes=int(header(headers, "original_bytes", "0")) or None,
            original_sha256=header(headers, "original_sha256"),
        )


def read_dlq(bootstrap: str, topic: str, idle_ms: int = 3000) -> list[DlqRecord]:
    """Every record of the DLQ ``topic`` from the beginning (stops after ``idle_ms`` idle)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer: Any = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[DlqRecord] = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            batch = consumer.poll(timeout_ms=idle_ms)
            if not batch:
                break
            for records in batch.values():
                for rec in records:
                    headers = [(k, bytes(v)) for k, v in rec.headers]
                    out.append(DlqRecord.from_message(rec.key, rec.value, headers))
        return out
    finally:
        consumer.close()
