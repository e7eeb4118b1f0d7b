"""Polled Kafka records -> :class:`SourceRecord` s of owned join partitions (daemon side).

Every record is parsed against the event contract (:func:`streamer.events.parse_event`), then
checked against its Kafka envelope (:func:`check_envelope`): its key must be its
``impression_id`` (else the labels of an impression would land in another join partition and
be lost as orphans) and its event time may not run ahead of the record's timestamp by more
than ``joiner.max_future_skew_s`` (else one bogus ``ts`` would move the watermark and close
every open window). A record that fails any check becomes a DLQ record, never an exception:
no input message can stop the daemon.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping
from typing import Any

from lt4rec.config import JoinerConfig
from streamer.events import Event, EventKind, InvalidEvent, parse_event
from streamer.joiner import SourceRecord

log = logging.getLogger(__name__)


def check_envelope(
    event: Event, key: bytes | None, record_ts_ms: int, now_ms: int, max_skew_ms: int
) -> None:
    """Raise :class:`InvalidEvent` (``wrong_key`` / ``bad_ts``) when the record's key or
    timestamp contradicts ``event``.

    The reference time is the record's timestamp (set by the producer or the broker, fixed
    in the log: replays decide alike), or the wall clock when that is earlier or unset.
    """
    if key is None or key != event.impression_id.encode("utf-8"):
        shown = "none" if key is None else repr(key[:60])
        raise InvalidEvent(
            "wrong_key", f"key {shown} is not impression_id {event.impression_id[:60]!r}"
        )
    ref = min(record_ts_ms, now_ms) if record_ts_ms > 0 else now_ms
    if event.ts > ref + max_skew_ms:
        ahead = (event.ts - ref) / 1000
        raise InvalidEvent(
            "bad_ts", f"ts {event.ts} is {ahead:.0f}s ahead of its record time {ref}"
        )


def parse_record(
    value: bytes, key: bytes | None, record_ts_ms: int, kind: EventKind, limits: Limits
) -> tuple[Event | None, InvalidEvent | None]:
    """The event of one record, or the reason it goes to the DLQ."""
    try:
        event = parse_event(value, kind, limits.max_bytes, limits.max_features)
        check_envelope(event, key, record_ts_ms, limits.now_ms(), limits.max_skew_ms)
        return event, None
    except InvalidEvent as exc:
        return None, exc
    except Exception as exc:  # a parser bug must not stop the stream: dead-letter it
        log.exception("unexpected error parsing a %s record", kind)
        return None, InvalidEvent("bad_json", f"unexpected {type(exc).__name__}: {exc}"[:200])


class Limits:
    """The per-record limits of one daemon (from ``kafka`` and ``joiner`` config)."""

    def __init__(
        self, max_bytes: int, joiner: JoinerConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.max_bytes = max_bytes
        self.max_features = joiner.max_features
        self.max_skew_ms = joiner.max_future_skew_s * 1000
        self._clock = clock

    def now_ms(self) -> int:
        return int(self._clock() * 1000)


def source_records(
    batch: Mapping[Any, list[Any]],
    kinds: Mapping[str, EventKind],
    owned: Collection[int],
    limits: Limits,
    counts: dict[str, int],
) -> dict[int, list[SourceRecord]]:
    """The records of ``batch`` (kafka-python's poll result) per owned join partition.

    Records of partitions not in ``owned`` are left out (the next claim seeks back to the
    store's offsets). ``counts`` is incremented per valid event kind and ``invalid``.
    """
    by_p: dict[int, list[SourceRecord]] = defaultdict(list)
    for tp, recs in batch.items():
        kind = kinds.get(tp.topic)
        if kind is None or tp.partition not in owned:
            continue
        out = by_p[tp.partition]
        for r in recs:
            value = r.value if r.value is not None else b""
            ts = getattr(r, "timestamp", -1)
            event, error = parse_record(
                value, r.key, ts if isinstance(ts, int) else -1, kind, limits
            )
            counts[kind if error is None else "invalid"] += 1
            out.append(
                SourceRecord(kind, tp.topic, tp.partition, r.offset, r.key, value, event, error)
            )
    return by_p
