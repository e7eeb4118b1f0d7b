"""The joiner daemon: Kafka consumer loop around the join engine, commit order in ONE place.

For every polled batch and every owned join partition ``p`` (docs/design/streamer.md):

1. **state** — ``engine.process(p, records)``: one store transaction stages all outputs in
   the outbox and stores the next input offsets;
2. **sinks** — examples and DLQ records are produced (idempotent producer), flushed, then
   ``engine.ack``-ed; archive rows are sealed into a chunk (when ``archive.flush_rows`` rows
   are waiting or ``archive.flush_seconds`` passed), written atomically, ``ack_archive``-ed;
3. **offsets** — Kafka offsets are committed, a courtesy for lag monitoring (on assignment
   we seek to the offsets the store returns from ``claim``).

A crash anywhere replays from the store: re-processing is a no-op below the stored offsets,
pending outbox entries are re-sent and sealed chunks re-written under the same names before
new records of ``p`` are processed. :class:`Fenced` (another owner claimed ``p``) drops ``p``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from lt4rec.config import AppConfig
from streamer.archive import ArchiveWriter
from streamer.delivery import Delivery, RunSummary
from streamer.events import EventKind, InvalidEvent, parse_event
from streamer.joiner import Fenced, JoinEngine, SourceRecord, make_store
from streamer.kafka.admin import ensure_topics
from streamer.kafka.consumer import consumer_lag, make_consumer
from streamer.kafka.producer import ProducerSink
from streamer.metrics import JoinerMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DaemonOptions:
    exit_when_idle_s: float | None = None  # exit after this long without records
    flush_at_end: bool = False  # close every window of owned partitions before exiting
    owner: str | None = None  # owner name recorded in the store (default host:pid:random)


class JoinerDaemon:
    """One member of the joiner consumer group (see module docstring)."""

    def __init__(
        self, cfg: AppConfig, opts: DaemonOptions | None = None, stream: IO[str] | None = None
    ) -> None:
        self.cfg = cfg
        self.opts = opts or DaemonOptions()
        self.owner = self.opts.owner or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        )
        self.kinds: dict[str, EventKind] = dict(cfg.topics.inputs)  # type: ignore[arg-type]
        self.store = make_store(cfg.store.url)
        self.engine = JoinEngine(self.store, cfg.joiner, cfg.topics, self.owner)
        self.sink = ProducerSink(cfg.kafka)
        self.metrics = JoinerMetrics(cfg.metrics, stream)
        self.summary = RunSummary()
        self.delivery = Delivery(
            self.engine, self.sink, ArchiveWriter(), Path(cfg.archive.dir), cfg.topics,
            self.metrics, self.summary, cfg.joiner.policy,
        )  # fmt: skip
        self.consumer: Any = None
        self._lock = threading.RLock()  # engine access: main loop vs rebalance callbacks
        self._owned: set[int] = set()
        self._recover: set[int] = set()  # claimed, outbox / sealed chunks not yet re-delivered
        self._last_seal: dict[int, float] = {}
        self._stop = threading.Event()
        self._last_activity = time.monotonic()
        self._joined = False  # idle time counts only after the first assignment
        self._first_record: float | None = None
        self._batch_seconds = 0.0

    # ---- lifecycle -----------------------------------------------------------------
    def request_stop(self) -> None:
        """Finish the current batch, drain and exit (SIGTERM / SIGINT)."""
        self._stop.set()

    @property
    def owned(self) -> list[int]:
        return sorted(self._owned)

    def run(self) -> RunSummary:
        """Consume until stopped or idle; returns what this run did."""
        cfg = self.cfg
        start = time.monotonic()
        ensure_topics(cfg.kafka, cfg.topics)
        self.metrics.serve()
        self.consumer = make_consumer(cfg.kafka, cfg.topics, self)
        self._last_activity = time.monotonic()
        try:
            while not self._stop.is_set():
                batch = self.consumer.poll(timeout_ms=cfg.kafka.poll_timeout_ms)
                t0 = time.monotonic()
                with self._lock:
                    self._recover_pending()
                    processed = self._process(batch)
                    self._seal_due()
                self._batch_seconds = time.monotonic() - t0
                if processed:
                    self.consumer.commit_async(processed)
                    now = time.monotonic()
                    if self._first_record is None:
                        self._first_record = now - self._batch_seconds
                    self._last_activity = now
                    self.summary.busy_seconds = now - self._first_record
                elif self._idle_expired():
                    log.info("idle for %.1fs: exiting", self.opts.exit_when_idle_s)
                    break
                self._observe()
            # --flush-at-end closes windows at the end of the stream (idle exit) only; after
            # a signal the state stays open so that a restart resumes exactly.
            flush = self.opts.flush_at_end and not self._stop.is_set()
            with self._lock:
                self._recover_pending()
                for p in self.owned:
                    self._finish(p, flush)
        finally:
            self._close()
        self.summary.seconds = time.monotonic() - start
        return self.summary

    def _idle_expired(self) -> bool:
        limit = self.opts.exit_when_idle_s
        if limit is None or not self._joined:
            return False
        return time.monotonic() - self._last_activity >= limit

    def _finish(self, p: int, flush: bool) -> None:
        try:
            if flush:
                self.engine.flush_all(p)
            self.delivery.drain(p, seal_all=True)
        except Fenced:
            log.warning("partition %d fenced while finishing", p)
            self._drop(p)

    def _close(self) -> None:
        with self._lock:
            for p in self.owned:
                self._release(p)
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
        self.sink.close()
        self.metrics.close()
        self.store.close()

    # ---- rebalance hooks (run on the consumer's IO thread while poll() waits) --------
    def on_revoked(self, partitions: set[int]) -> None:
        with self._lock:
            self._joined = False  # a rebalance is running: idle time waits for the assignment
            for p in sorted(partitions & self._owned):
                try:
                    self.delivery.drain(p, seal_all=True, recover=p in self._recover)
                except Fenced:
                    log.warning("partition %d fenced at revocation", p)
                self._release(p)

    def on_lost(self, partitions: set[int]) -> None:
        with self._lock:
            self._joined = False
            for p in sorted(partitions & self._owned):
                self._release(p)

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        with self._lock:
            inputs = set(self.kinds)
            by_p: dict[int, set[str]] = defaultdict(set)
            for tp in assigned:
                by_p[tp.partition].add(tp.topic)
            for p, topics in sorted(by_p.items()):
                tps = [TopicPartition(t, p) for t in sorted(topics)]
                if topics != inputs:
                    log.warning("partition %d incomplete (%s): paused", p, sorted(topics))
                    self.consumer.pause(*tps)
                    continue
                self.consumer.resume(*tps)  # paused earlier (fenced / incomplete)?
                offsets = self.engine.claim(p)
                self._owned.add(p)
                self._recover.add(p)
                self._last_seal[p] = time.monotonic()
                for tp in tps:
                    nxt = offsets.get(tp.topic)
                    self.consumer.seek(tp, int(nxt) if nxt is not None else 0)
            self._last_activity = time.monotonic()
            self._joined = True

    def _release(self, p: int) -> None:
        try:
            self.engine.release(p)
        except Exception:  # releasing is bookkeeping only; never fail a rebalance on it
            log.exception("release of partition %d failed", p)
        self._drop(p)

    def _drop(self, p: int) -> None:
        self._owned.discard(p)
        self._recover.discard(p)
        self._last_seal.pop(p, None)

    # ---- the commit order ----------------------------------------------------------
    def _records(self, batch: dict[Any, list[Any]]) -> dict[int, list[SourceRecord]]:
        by_p: dict[int, list[SourceRecord]] = defaultdict(list)
        max_bytes = self.cfg.kafka.max_message_bytes
        counts: dict[str, int] = defaultdict(int)
        for tp, recs in batch.items():
            kind = self.kinds.get(tp.topic)
            if kind is None or tp.partition not in self._owned:
                continue
            out = by_p[tp.partition]
            for r in recs:
                value = r.value if r.value is not None else b""
                try:
                    event, error = parse_event(value, kind, max_bytes), None
                    counts[kind] += 1
                except InvalidEvent as exc:
                    event, error = None, exc
                    counts["invalid"] += 1
                out.append(
                    SourceRecord(kind, tp.topic, tp.partition, r.offset, r.key, value, event, error)
                )
        self.metrics.count_in(counts)
        return by_p

    def _process(self, batch: dict[Any, list[Any]]) -> dict[TopicPartition, OffsetAndMetadata]:
        """Steps 1 and 2 for every partition of the batch; returns offsets to commit."""
        commit: dict[TopicPartition, OffsetAndMetadata] = {}
        if not batch:
            return commit
        self.summary.batches += 1
        for p, records in sorted(self._records(batch).items()):
            if not records:
                continue
            try:
                waiting = self.delivery.outbox(p)
                res = self.engine.process(p, records)  # 1. state (one transaction)
                if (
                    res.staged is not None
                    and not waiting.get("examples")
                    and not waiting.get("dlq")
                ):  # the outbox holds exactly what this transaction staged: no read-back
                    self.delivery.send_staged(p, res.staged)
                else:
                    self.delivery.drain(p)  # 2. sinks
            except Fenced:
                log.warning("partition %d fenced: another owner claimed it", p)
                self._drop(p)  # stop fetching it until the group reassigns it
                self.consumer.pause(*(TopicPartition(t, p) for t in self.kinds))
                continue
            self.summary.records += len(records)
            last: dict[str, int] = {}
            for r in records:
                last[r.topic] = max(last.get(r.topic, -1), r.offset)
            for topic, off in last.items():
                commit[TopicPartition(topic, p)] = OffsetAndMetadata(off + 1, "", -1)
        return commit  # 3. offsets (by the caller, outside the lock)

    def _seal(self, p: int, min_rows: int) -> None:
        if self.delivery.seal(p, min_rows):
            self._last_seal[p] = time.monotonic()

    def _seal_due(self) -> None:
        """Seal when ``flush_rows`` archive rows wait, or ``flush_seconds`` passed with any."""
        now = time.monotonic()
        for p in self.owned:
            rows = self.delivery.outbox(p).get("archive", 0)
            timed_out = now - self._last_seal.get(p, now) >= self.cfg.archive.flush_seconds
            if rows <= 0:
                if timed_out:  # nothing to archive: the watermark still moves the marker
                    self.delivery.mark_complete(p)
                    self._last_seal[p] = now
                continue
            if rows >= self.cfg.archive.flush_rows or timed_out:
                try:
                    self._seal(p, 1 if timed_out else self.cfg.archive.flush_rows)
                except Fenced:
                    self._drop(p)
                self._last_seal[p] = now

    def _recover_pending(self) -> None:
        """Re-deliver the outbox and sealed chunks of newly claimed partitions first."""
        for p in sorted(self._recover):
            try:
                self.delivery.drain(p, recover=True)
            except Fenced:
                self._drop(p)
            self._recover.discard(p)

    # ---- observation ----------------------------------------------------------------
    def _observe(self) -> None:
        if not self.metrics.progress_due():
            return
        try:
            tps = list(self.consumer.assignment() or ())
            self.metrics.set_consumer_lag(consumer_lag(self.consumer, tps))
        except Exception as exc:  # lag is best effort (broker busy, rebalance in progress)
            log.debug("consumer lag unavailable: %s", exc)
        with self._lock:
            stats = self.engine.stats()
        self.metrics.set_pending(stats.pending)
        for p, part in stats.partitions.items():
            self.metrics.set_watermark(p, part.watermark)
        self.metrics.progress(self.owned)
