"""JoinEngine: the transactional facade the Kafka daemon drives (design doc "Engine API").

One ``process(p, records)`` call is one store transaction (:mod:`streamer.joiner.batch`):
records below the stored next offset are skipped (replay), the rest applied, windows closed,
outputs staged in the outbox and the next offsets written in the same commit. Every call on a
partition checks its epoch: after another owner's ``claim`` it raises :class:`Fenced` and the
engine forgets the partition. Memory per call is bounded by the batch plus a chunk of due
entries; with the SQL store the pending state lives in the database, not in the process.

A transaction that fails on a transient database error (a lost connection, a timeout:
``StateStore.transient``) is retried ``retries`` times with exponential backoff from
``backoff_s`` — safe, because nothing of it was committed and records below the stored
offsets are skipped. Any other database error, or the last failure, becomes a
:class:`StoreError` with a one-line cause (never the SQL statement and its parameters).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from lt4rec.config.joiner import JoinerConfig
from lt4rec.config.kafka import TopicsConfig
from streamer.joiner.batch import BatchApplier, norm_meta, watermark_of
from streamer.joiner.rules import Rules
from streamer.joiner.types import (
    ArchiveChunk,
    EngineStats,
    JsonRows,
    Output,
    PartitionStats,
    ProcessResult,
    SinkName,
    SourceRecord,
)
from streamer.store.base import ChunkRef, Fenced, StateStore, StoreError, StoreTxn

__all__ = ["ArchiveChunk", "EngineStats", "Fenced", "JoinEngine", "Output", "ProcessResult",
           "SourceRecord"]  # fmt: skip

T = TypeVar("T")
log = logging.getLogger(__name__)


class JoinEngine:
    """Per-partition event joins over a :class:`StateStore`; see the module docstring.

    ``max_pending`` is split evenly over ``topics.partitions`` (a process owning every
    partition stays under it); ``max_chunk_rows`` bounds the rows of one sealed archive chunk;
    ``max_message_bytes`` (``kafka.max_message_bytes``) bounds every example and DLQ record:
    an impression whose examples would be larger is dead-lettered (``oversize``), a DLQ copy
    of a larger message is truncated (:func:`streamer.dlq.dlq_payload`).
    """

    def __init__(
        self,
        store: StateStore,
        joiner: JoinerConfig,
        topics: TopicsConfig,
        owner: str,
        max_chunk_rows: int = 50_000,
        max_message_bytes: int = 1_000_000,
        retries: int = 0,
        backoff_s: float = 0.5,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        if max_chunk_rows < 1:
            raise ValueError("max_chunk_rows must be >= 1")
        self.store = store
        self.cfg = joiner
        self.topics = topics
        self.owner = owner
        self.rules = Rules(joiner, max_message_bytes)
        self.max_chunk_rows = max_chunk_rows
        self.pending_cap = max(1, joiner.max_pending // topics.partitions)
        self._batch = BatchApplier(self.rules, self.pending_cap)
        self._epochs: dict[int, int] = {}
        self._meta: dict[int, tuple[int, dict[str, Any]]] = {}
        self.retries = retries
        self.backoff_s = backoff_s
        self._on_retry = on_retry

    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, retried on transient store errors; store errors become StoreError."""
        start, delay = time.monotonic(), self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except (Fenced, StoreError):
                raise
            except Exception as exc:
                cause = self.store.describe(exc)
                if cause is None:
                    raise  # not a database error: a bug, let it show
                if attempt < self.retries and self.store.transient(exc):
                    log.warning("state store: %s failed (%s); retry %d of %d in %.1fs",
                                what, cause, attempt + 1, self.retries, delay)  # fmt: skip
                    if self._on_retry is not None:
                        self._on_retry()
                    time.sleep(delay)
                    delay *= 2
                    continue
                tried = f" (gave up after {attempt + 1} attempts in " \
                    f"{time.monotonic() - start:.1f}s)" if attempt else ""  # fmt: skip
                raise StoreError(f"{what}: {cause}{tried}") from exc
        raise AssertionError("unreachable")

    # -- ownership ---------------------------------------------------------------------------
    def claim(self, partition: int) -> dict[str, int]:
        """Bump ``partition``'s epoch (fencing older owners); return its stored next offsets."""
        meta = self._retrying(f"claim of partition {partition}",
                              lambda: self.store.claim(partition, self.owner))  # fmt: skip
        self._epochs[partition] = meta.epoch
        data = norm_meta(meta.data)
        self._meta[partition] = (meta.epoch, data)
        return dict(data["offsets"])

    def release(self, partition: int) -> None:
        """Forget a revoked partition (its state stays in the store for the next owner)."""
        self._epochs.pop(partition, None)
        self._meta.pop(partition, None)

    def claimed(self) -> list[int]:
        """Partitions this engine currently holds."""
        return sorted(self._epochs)

    def _run(
        self,
        partition: int,
        fn: Callable[[StoreTxn, dict[str, Any]], T],
        durable: bool = False,
        readonly: bool = False,
    ) -> T:
        """Run ``fn(txn, meta)`` in one transaction of ``partition``; cache the committed meta."""
        epoch = self._epochs.get(partition)
        if epoch is None:
            raise Fenced(f"partition {partition} is not claimed by {self.owner!r}")

        def attempt() -> tuple[T, dict[str, Any]]:
            with self.store.transaction(partition, epoch, durable) as txn:
                data = norm_meta(txn.read_meta().data)
                result = fn(txn, data)
                if not readonly:
                    txn.write_meta(data)
            return result, data

        try:
            result, data = self._retrying(f"transaction of partition {partition}", attempt)
        except Fenced:
            self.release(partition)
            raise
        self._meta[partition] = (epoch, data)
        return result

    # -- processing --------------------------------------------------------------------------
    def process(self, partition: int, records: Sequence[SourceRecord]) -> ProcessResult:
        """Apply ``records`` of join partition ``partition`` in one transaction."""
        return self._run(partition, lambda t, d: self._batch.run(partition, t, d, records, False))

    def flush_all(self, partition: int) -> ProcessResult:
        """Close every window and expire every orphan and tombstone now (``--flush-at-end``)."""
        return self._run(partition, lambda t, d: self._batch.run(partition, t, d, (), True))

    # -- example / DLQ outbox ----------------------------------------------------------------
    def pending(self, partition: int, sink: SinkName, limit: int) -> list[Output]:
        """Up to ``limit`` staged, unacknowledged outputs of ``sink``, oldest first."""
        if sink not in ("examples", "dlq"):
            raise ValueError(f"sink must be 'examples' or 'dlq', got {sink!r}")
        return self._run(partition, lambda t, d: t.pending(sink, limit), readonly=True)

    def ack(self, partition: int, sink: SinkName, upto_seq: int) -> None:
        """Delete ``sink`` outputs with seq <= ``upto_seq`` (they were produced and flushed)."""
        if sink not in ("examples", "dlq"):
            raise ValueError(f"sink must be 'examples' or 'dlq', got {sink!r}")

        def fn(txn: StoreTxn, data: dict[str, Any]) -> None:
            gone = txn.ack(sink, upto_seq)
            data["counts"][f"outbox.{sink}"] = data["counts"].get(f"outbox.{sink}", 0) - gone

        self._run(partition, fn)

    # -- archive -----------------------------------------------------------------------------
    def _chunk(self, txn: StoreTxn, ref: ChunkRef) -> ArchiveChunk:
        rows = JsonRows([o.value for o in txn.chunk_rows(ref)])
        return ArchiveChunk(ref.partition, ref.first_seq, ref.last_seq, rows)

    def seal_archive(self, partition: int, min_rows: int = 1) -> ArchiveChunk | None:
        """Seal up to ``max_chunk_rows`` pending archive rows (if >= ``min_rows``) durably."""

        def fn(txn: StoreTxn, data: dict[str, Any]) -> ArchiveChunk | None:
            ref = txn.seal(max(1, min_rows), self.max_chunk_rows)
            if ref is None:
                return None
            data["counts"]["sealed_chunks"] = data["counts"].get("sealed_chunks", 0) + 1
            return self._chunk(txn, ref)

        return self._run(partition, fn, durable=True)

    def sealed_chunks(self, partition: int) -> list[ArchiveChunk]:
        """Chunks sealed but not acknowledged (to rewrite after a crash), oldest first."""
        return self._run(
            partition, lambda t, d: [self._chunk(t, r) for r in t.chunks()], readonly=True
        )

    def ack_archive(self, chunk: ArchiveChunk) -> None:
        """The chunk's files are in place: drop its rows from the outbox."""

        def fn(txn: StoreTxn, data: dict[str, Any]) -> None:
            ref = ChunkRef(chunk.partition, chunk.first_seq, chunk.last_seq)
            if ref not in txn.chunks():
                return  # already acknowledged: idempotent
            txn.drop_chunk(ref)
            counts = data["counts"]
            counts["sealed_chunks"] = counts.get("sealed_chunks", 0) - 1
            counts["outbox.archive"] = counts.get("outbox.archive", 0) - len(chunk.rows)

        self._run(chunk.partition, fn)

    # -- metrics -----------------------------------------------------------------------------
    def stats(self) -> EngineStats:
        """Gauges and counters of every claimed partition as of its last commit."""
        parts: dict[int, PartitionStats] = {}
        totals: dict[str, int] = {}
        for p, (epoch, data) in sorted(self._meta.items()):
            counts = data["counts"]
            counters = dict(data["counters"])
            for k, v in counters.items():
                totals[k] = totals.get(k, 0) + v
            parts[p] = PartitionStats(
                partition=p,
                epoch=epoch,
                pending=counts.get("pending", 0),
                orphans=counts.get("orphans", 0),
                tombstones=counts.get("tombstones", 0),
                watermark=watermark_of(data["max_ts"], self.rules.lateness),
                max_ts=dict(data["max_ts"]),
                next_offsets=dict(data["offsets"]),
                outbox={s: counts.get(f"outbox.{s}", 0) for s in ("examples", "dlq", "archive")},
                sealed_chunks=counts.get("sealed_chunks", 0),
                counters=counters,
            )
        return EngineStats(parts, totals)
