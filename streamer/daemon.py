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

Everything runs on the polling thread: rebalance callbacks only record (streamer.rebalance),
and the changes are applied after each ``poll()``, before the next batch. Nothing the input
or the broker does stops the loop: bad records are dead-lettered (streamer.intake), a sink
that cannot deliver pauses its partition and retries with backoff, idle time counts only
while provably idle (streamer.health), and a rebalance that never completes is reported and
retried with a fresh consumer (after ``kafka.rebalance_retries`` in a row: exit status 3).
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
from streamer import gctune
from streamer.archive import ArchiveWriter
from streamer.delivery import Delivery, RunSummary
from streamer.events import EventKind
from streamer.health import IdleClock
from streamer.intake import Limits, source_records
from streamer.joiner import Fenced, JoinEngine, make_store
from streamer.kafka.admin import ensure_topics
from streamer.kafka.consumer import consumer_lag, make_consumer
from streamer.kafka.producer import ProducerSink, SinkError
from streamer.kafka.stranded import finish_stranded_join
from streamer.metrics import JoinerMetrics
from streamer.ownership import Ownership
from streamer.rebalance import Rebalances
from streamer.watchdog import RebalanceStalled, Watchdog

__all__ = ["DaemonOptions", "JoinerDaemon", "RebalanceStalled"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DaemonOptions:
    exit_when_idle_s: float | None = None  # exit after this long provably idle
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
        self.metrics = JoinerMetrics(cfg.metrics, stream)
        st = cfg.store
        self.store = make_store(st.url, st.connect_timeout_s, st.statement_timeout_s)
        self.engine = JoinEngine(
            self.store, cfg.joiner, cfg.topics, self.owner,
            max_message_bytes=cfg.kafka.max_message_bytes, retries=st.retries,
            backoff_s=st.retry_backoff_s, on_retry=lambda: self.metrics.count_retry("store"),
        )  # fmt: skip
        self.sink = ProducerSink(cfg.kafka)
        self.summary = RunSummary()
        self.delivery = Delivery(
            self.engine, self.sink, ArchiveWriter(max_columns=cfg.archive.max_columns),
            Path(cfg.archive.dir), cfg.topics, self.metrics, self.summary, cfg.joiner.policy,
            cfg.kafka.max_message_bytes, cfg.archive.flush_rows, cfg.archive.flush_seconds,
        )  # fmt: skip
        self.limits = Limits(cfg.kafka.max_message_bytes, cfg.joiner)
        self.rebalances = Rebalances()
        self.watchdog = Watchdog(cfg.kafka, self.kinds, self.rebalances, self.metrics)
        self.idle = IdleClock(self.opts.exit_when_idle_s)
        self.consumer: Any = None
        self.parts = Ownership(
            self.engine, self.delivery, list(self.kinds), lambda: self.consumer, self.metrics
        )
        self._stop = threading.Event()
        self.tune_gc = True  # streamer.gctune for the hot loop (off: Python's defaults)
        self._first_record: float | None = None

    # ---- lifecycle -----------------------------------------------------------------
    def request_stop(self) -> None:
        """Finish the current batch, drain and exit (SIGTERM / SIGINT)."""
        self._stop.set()

    @property
    def owned(self) -> list[int]:
        return sorted(self.parts.owned)

    def run(self) -> RunSummary:
        """Consume until stopped or idle; returns what this run did."""
        cfg = self.cfg
        start = time.monotonic()
        ensure_topics(cfg.kafka, cfg.topics)
        self.metrics.serve()
        self.metrics.set_status("ok")
        self.consumer = make_consumer(cfg.kafka, cfg.topics, self.rebalances)
        gc_before = gctune.tune() if self.tune_gc else None
        try:
            while not self._stop.is_set():
                batch = self.consumer.poll(timeout_ms=cfg.kafka.poll_timeout_ms)
                finish_stranded_join(self.consumer)  # a kafka-python 3.0 workaround
                t0 = time.monotonic()
                if self.parts.apply(self.rebalances.take()):
                    self.watchdog.stalls = 0
                    self.idle.busy()
                self.parts.recover_pending()
                self.parts.retry_stalled()
                processed = self._process(batch)
                for p in self.owned:
                    self.parts.guarded(p, self.delivery.seal_due, p)
                if processed:
                    self.consumer.commit_async(processed)
                    now = time.monotonic()
                    if self._first_record is None:
                        self._first_record = t0
                    self.idle.busy()
                    self.summary.busy_seconds = now - self._first_record
                elif self.idle.expired(self._quiet):
                    log.info("idle for %.1fs: exiting", self.idle.idle_for())
                    break
                if self.watchdog.stalled(self.consumer):
                    self._rejoin()
                self._observe()
            # --flush-at-end closes windows at the end of the stream (idle exit) only; after
            # a signal the state stays open so that a restart resumes exactly.
            flush = self.opts.flush_at_end and not self._stop.is_set()
            self.parts.recover_pending()
            for p in self.owned:
                self.parts.finish(p, flush)
        finally:
            self._close()
            if gc_before is not None:
                gctune.restore(gc_before)
        self.summary.seconds = time.monotonic() - start
        return self.summary

    def _close(self) -> None:
        for p in self.owned:
            self.parts.release(p)
        if self.consumer is not None:
            self.consumer.close(autocommit=False, timeout_ms=5000)
        self.sink.close()
        self.metrics.close()
        self.store.close()

    # ---- the commit order ----------------------------------------------------------
    def _process(self, batch: dict[Any, list[Any]]) -> dict[TopicPartition, OffsetAndMetadata]:
        """Steps 1 and 2 for every partition of the batch; returns offsets to commit."""
        commit: dict[TopicPartition, OffsetAndMetadata] = {}
        if not batch:
            return commit
        self.summary.batches += 1
        counts: dict[str, int] = defaultdict(int)
        by_p = source_records(batch, self.kinds, self.parts.ready(), self.limits, counts)
        self.metrics.count_in(counts)
        for p, records in sorted(by_p.items()):
            if not records:
                continue
            try:
                waiting = self.delivery.outbox(p)
                res = self.engine.process(p, records)  # 1. state (one transaction)
                self.metrics.count_engine(res.counters)
                if (
                    res.staged is not None
                    and not waiting.get("examples")
                    and not waiting.get("dlq")
                ):  # the outbox holds exactly what this transaction staged: no read-back
                    self.delivery.send_staged(p, res.staged)
                else:
                    self.delivery.drain(p)  # 2. sinks
            except Fenced:
                self.parts.fenced(p)
                continue
            except SinkError as exc:  # state is committed: only the delivery waits
                self.parts.stall(p, exc)
            self.summary.records += len(records)
            last: dict[str, int] = {}
            for r in records:
                last[r.topic] = max(last.get(r.topic, -1), r.offset)
            for topic, off in last.items():
                commit[TopicPartition(topic, p)] = OffsetAndMetadata(off + 1, "", -1)
        return commit  # 3. offsets (by the caller)

    # ---- health: idle, watchdog, observation ------------------------------------------
    def _quiet(self) -> bool:
        owned = self.parts.owned
        outbox = (self.delivery.outbox(p) for p in owned)
        drained = not self.parts.stalled and not any(
            o.get("examples") or o.get("dlq") for o in outbox
        )
        return self.watchdog.quiet(self.consumer, owned, drained)

    def _rejoin(self) -> None:
        """The watchdog found the rebalance stuck: leave the group, join with a new member."""
        for p in self.owned:
            self.parts.finish(p, flush=False)
            self.parts.release(p)
        self.consumer.close(autocommit=False, timeout_ms=5000)
        self.rebalances.restart()
        self.consumer = make_consumer(self.cfg.kafka, self.cfg.topics, self.rebalances)

    def _observe(self) -> None:
        self.metrics.set_status(self.watchdog.status(bool(self.parts.stalled)))
        if not self.metrics.progress_due():
            return
        try:
            tps = [TopicPartition(t, p) for t in self.kinds for p in self.parts.owned]
            self.metrics.set_consumer_lag(consumer_lag(self.consumer, tps))
        except Exception as exc:  # lag is best effort (broker busy, rebalance in progress)
            log.debug("consumer lag unavailable: %s", exc)
        stats = self.engine.stats()
        self.metrics.set_pending(stats.pending)
        for p, part in stats.partitions.items():
            self.metrics.set_watermark(p, part.watermark)
        self.metrics.progress(self.owned)
