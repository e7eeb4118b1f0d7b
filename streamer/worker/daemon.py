"""The worker daemon: polls ``topics.examples``, cuts micro-batches, keeps the group alive.

``WorkerDaemon.run`` is the polling thread. Each round it commits the offsets of the newest
durable checkpoint (from the trainer), pauses or resumes its partitions (backpressure: paused
while the training queue is full, so memory stays bounded and ``poll`` keeps running well
within ``kafka.max_poll_interval_ms`` however slow a step is), polls, validates /
deduplicates / batches the records (:mod:`streamer.worker.batching`) and queues the cuts for
the training thread, which owns the commit order (:mod:`streamer.worker.trainer`).

**Partition assignment: cooperative-sticky** (KIP-429, ``CooperativeStickyAssignor`` of
kafka-python 3.x). The worker reads one topic, so nothing ties partitions together (the
joiner needs the range assignor for its co-partitioned inputs); with the cooperative protocol a
rebalance revokes only the partitions that move, so adding or losing a worker does not stop
the others' training, and stickiness keeps each partition (its dedup lanes, the examples its
model saw last) on the same worker across rebalances.

Rebalance hooks run on kafka-python's IO thread while ``poll`` waits: on revocation (or loss)
the pending records of those partitions are dropped, the training queue is drained and a
checkpoint written before the partitions go (the next owner resumes from it); on assignment
each partition seeks to the trained offset (the beginning when the model has none) and
restarts its dedup lanes from the trained marks.

Exit: ``--exit-when-idle S`` trains what is pending (the end of the stream), checkpoints and
exits; SIGTERM drops the partial batches (re-read after a restart: batch boundaries stay
where ``batch_cut = "offset"`` puts them), drains the queue and checkpoints.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any

import torch
from kafka import TopicPartition
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor

from checkpoints import Notice, Registry
from lt4rec.config import AppConfig
from streamer.kafka.admin import ensure_topics
from streamer.kafka.consumer import JoinRebalanceListener, consumer_lag, group_consumer
from streamer.kafka.producer import ProducerSink
from streamer.kafka.stranded import finish_stranded_join
from streamer.notices.publisher import NoticeError, NoticePublisher
from streamer.worker.batching import Batcher
from streamer.worker.checkpoint import Start, load_start
from streamer.worker.commit import commit_offsets, owned_offsets
from streamer.worker.encode import encode_cut
from streamer.worker.metrics import WorkerMetrics
from streamer.worker.progressive import ProgressiveMetrics
from streamer.worker.shadow import ShadowPublisher
from streamer.worker.swap import ModelFollower
from streamer.worker.trainer import OnTrained, Trainer

log = logging.getLogger(__name__)
SETTLE_POLL_MS = 1000  # one poll letting a rebalance end before the final offset commit
GC_THRESHOLDS = (50_000, 50, 100)  # generation-0 collections every 50k allocations, not 700


@dataclass(frozen=True)
class WorkerOptions:
    exit_when_idle_s: float | None = None  # train what is pending and exit after this idle
    on_trained: OnTrained | None = None  # called after every trained batch (tests, benchmarks)


@dataclass
class WorkerSummary:
    records: int = 0
    seconds: float = 0.0
    start: str = ""
    version: int | None = None
    checkpoints: int = 0
    busy_seconds: float = 0.0  # first polled record -> end of the last trained batch
    counters: dict[str, int] = field(default_factory=dict)
    rolling: dict[str, float] = field(default_factory=dict)
    swaps: list[dict[str, Any]] = field(default_factory=list)  # hot-swaps (streamer.worker.swap)
    published: list[dict[str, Any]] = field(default_factory=list)  # online publications


def configure_torch(cfg: AppConfig) -> None:
    """Threads and deterministic CPU algorithms as ``[worker]`` asks."""
    w = cfg.worker
    if w.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
    elif w.threads:
        torch.set_num_threads(w.threads)


class WorkerDaemon:
    """One member of the worker consumer group (see module docstring)."""

    def __init__(
        self, cfg: AppConfig, opts: WorkerOptions | None = None, stream: IO[str] | None = None
    ) -> None:
        self.cfg, self.opts = cfg, opts or WorkerOptions()
        configure_torch(cfg)
        self.metrics = WorkerMetrics(cfg.metrics, stream)
        self.registry = Registry(cfg.registry)
        self.progress = ProgressiveMetrics(cfg.worker.metrics_window, cfg.worker.drift_delta)
        try:
            self.start: Start = load_start(self.registry, cfg, self.progress)
        except BaseException:
            self.registry.close()
            raise
        for info, reason in self.start.skipped:
            log.error("refused corrupt version %d: %s", info.version, reason)
            self.metrics.corrupt.inc()
        log.warning("worker starts from %s", self.start.source)
        if self.start.holder.version is not None:
            self.metrics.version.set(self.start.holder.version)
        holder = self.start.holder
        w = cfg.worker
        self.batcher = Batcher(
            cfg.topics.examples, holder.encoder.columns, cfg.joiner.policy, w.batch_size,
            w.batch_cut, w.max_wait_ms / 1000.0, cfg.kafka.max_message_bytes,
        )  # fmt: skip
        self.dlq = ProducerSink(cfg.kafka, "worker-dlq")
        self.trainer = Trainer(
            cfg, holder, self.start.position, self.progress, self.registry, self.metrics,
            self.dlq, on_trained=self.opts.on_trained, on_drift=self._drift,
        )  # fmt: skip
        self._last_drift_request = 0.0
        self.notices: NoticePublisher | None = None
        if cfg.publish.online_every_s > 0:
            self.notices = NoticePublisher(
                cfg.kafka, cfg.topics, self.registry, client_suffix="worker-publisher"
            )
            self.trainer.shadow = ShadowPublisher(cfg, self.registry, self.metrics, self._announce)
        self.consumer: Any = None
        self.follower: ModelFollower | None = None
        self._lock = threading.RLock()  # batcher: polling thread vs rebalance hooks
        self._owned: set[int] = set()
        self._stop = threading.Event()
        self._joined = False
        self._waiting_since: float | None = None  # a join waits for its assignment since
        self._stalls = 0  # stalled joins in a row
        self._last_activity = time.monotonic()
        self._first_record: float | None = None
        self.summary = WorkerSummary(start=self.start.source)

    def request_stop(self) -> None:
        """Drain the training queue, checkpoint and exit (SIGTERM / SIGINT)."""
        self._stop.set()

    def _drift(self, task: str) -> None:
        """A drift alarm (training thread): ask the scheduler for an early re-prune, at most
        once per ``scheduler.drift_min_interval_s`` from this worker (the scheduler limits too)."""
        sc = self.cfg.scheduler
        now = time.monotonic()
        if not sc.drift_trigger or (
            self._last_drift_request and now - self._last_drift_request < sc.drift_min_interval_s
        ):
            return
        self._last_drift_request = now
        from streamer.scheduler.runs import JOB, RunLedger

        try:
            ledger = RunLedger(self.cfg.registry.url)
            try:
                ledger.request(JOB, f"drift of the {task} loss (worker version "
                               f"{self.trainer.holder.version})")  # fmt: skip
            finally:
                ledger.close()
            log.warning("drift of the %s loss: early re-pruning requested", task)
        except Exception:  # the alarm is advisory: never fail training on it
            log.exception("could not request an early re-prune")

    def _announce(self, version: int, reason: str) -> Notice:
        """Publish ``version`` (registry first) and announce it on ``topics.models``."""
        assert self.notices is not None
        return self.notices.publish(version, reason)

    @property
    def owned(self) -> list[int]:
        return sorted(self._owned)

    # ---- the loop ------------------------------------------------------------------
    def run(self) -> WorkerSummary:
        cfg = self.cfg
        t_start = time.monotonic()
        try:
            ensure_topics(cfg.kafka, cfg.topics)
            self.metrics.serve()
            if self.notices is not None:  # topic + a notice left pending by a crash
                try:
                    self.notices.start()
                except (NoticeError, OSError) as exc:
                    log.error("model notices unavailable for now: %s", exc)
            self.trainer.start()
            if cfg.worker.gc_freeze:  # start-up objects (model, torch, kafka) leave the GC
                gc.collect()
                gc.freeze()
                gc.set_threshold(*GC_THRESHOLDS)
            self.consumer = self._make_consumer()
            if cfg.publish.follow:
                self.follower = ModelFollower(cfg, self)
                self.follower.start()
            self._last_activity = time.monotonic()
            poll_ms = max(10, min(cfg.kafka.poll_timeout_ms, cfg.worker.max_wait_ms))
            idle_exit = False
            while not self._stop.is_set():
                self._commit()
                self.trainer.checkpoint_if_due()
                if self._backpressure():  # paused: poll only briefly, to resume promptly
                    self.trainer.wait_for_room(poll_ms / 1000.0)
                    polled = self.consumer.poll(timeout_ms=0)
                else:  # a join in flight is awaited by a long poll (see _stalled)
                    wait = poll_ms if self._joined else max(poll_ms, cfg.kafka.poll_timeout_ms)
                    polled = self.consumer.poll(timeout_ms=wait)
                finish_stranded_join(self.consumer)  # a kafka-python 3.0 workaround
                n = self._intake(polled)
                if n:
                    self._last_activity = time.monotonic()
                    if self._first_record is None:
                        self._first_record = self._last_activity
                elif self._idle_expired():
                    idle_exit = True
                    break
                if self._stalled():
                    self._rejoin()
                self._observe()
            with self._lock:
                if idle_exit:  # the end of the stream: train what is pending
                    for cut in self.batcher.flush():
                        self.trainer.put(cut)  # encoded by the trainer
                else:  # stopped: partial batches are re-read after a restart
                    self.batcher.drop(list(self._owned))
            self.trainer.barrier(checkpoint=True)
            self._commit(sync=True)  # the last one must reach the broker before close
        finally:
            self._close()
        s = self.summary
        s.seconds = time.monotonic() - t_start
        s.version = self.trainer.holder.version
        s.checkpoints = self.trainer.checkpoints
        if self._first_record is not None and self.trainer.last_trained is not None:
            s.busy_seconds = max(0.0, self.trainer.last_trained - self._first_record)
        s.counters = dict(self.trainer.position.counters)
        s.rolling = self.progress.snapshot()
        s.swaps = [r.to_dict() for r in self.follower.records] if self.follower else []
        s.published = list(self.trainer.shadow.published) if self.trainer.shadow else []
        return s

    def _intake(self, polled: dict[Any, list[Any]]) -> int:
        n = 0
        with self._lock:
            cuts = []
            for tp, recs in sorted(polled.items(), key=lambda kv: kv[0].partition):
                if tp.partition not in self._owned:
                    continue
                n += len(recs)
                cuts.extend(self.batcher.add(tp.partition, recs))
            cuts.extend(self.batcher.due())
        encoder, topic = self.trainer.holder.encoder, self.cfg.topics.examples
        for cut in cuts:
            if not cut.empty():
                encode_cut(cut, encoder, topic)  # here, overlapping the training thread
                self.trainer.put(cut)
        self.summary.records += n
        return n

    def _backpressure(self) -> bool:
        """Pause every owned partition while the training queue is full, resume after;
        returns whether consumption is paused."""
        tps = set(self.consumer.assignment() or ())
        paused = set(self.consumer.paused())
        if self.trainer.full():
            if tps - paused:
                self.consumer.pause(*(tps - paused))
            return True
        if paused:
            self.consumer.resume(*paused)
        return False

    def _commit(self, sync: bool = False) -> None:
        """Step 5 of the commit order (:mod:`streamer.worker.commit`): asynchronously what a
        new checkpoint handed over; when ``sync``, the newest durable offsets again."""
        offsets = self.trainer.take_commit()
        if sync:
            offsets = self.trainer.durable_offsets()
        if offsets and self.consumer is not None:
            commit = owned_offsets(self.cfg.topics.examples, offsets, self._owned)
            commit_offsets(self.consumer, commit, sync, settle=self._settle)

    def _settle(self) -> None:
        """Let a rebalance in progress end before the final commit: one poll with every
        partition paused (nothing is fetched; records it may still return are dropped, a
        restart re-reads them from the checkpoint's offsets)."""
        tps = list(self.consumer.assignment() or ())
        if tps:
            self.consumer.pause(*tps)
        finish_stranded_join(self.consumer)
        self.consumer.poll(timeout_ms=SETTLE_POLL_MS)

    def _make_consumer(self) -> Any:
        cfg = self.cfg
        self._waiting_since = time.monotonic()  # a join starts: no assignment yet
        return group_consumer(
            cfg.kafka, cfg.worker.group_id, f"{cfg.kafka.client_id}-worker",
            CooperativeStickyAssignor, [cfg.topics.examples],
            lambda consumer: JoinRebalanceListener(self, consumer, pause_assigned=False),
            cfg.worker.instance_id or None,
        )  # fmt: skip

    def _stalled(self) -> bool:
        """A join that has waited ``kafka.rebalance_timeout_s`` for its assignment while the
        broker answers: kafka-python can drop a SyncGroup answer that arrives while no
        ``poll()`` awaits it (see :mod:`streamer.rebalance`) and then waits forever with no
        partitions. Re-joining with a fresh consumer recovers; after ``kafka.rebalance_retries``
        re-joins in a row the worker fails (exit 1) rather than idle silently."""
        since = self._waiting_since
        k = self.cfg.kafka
        if since is None or time.monotonic() - since < k.rebalance_timeout_s:
            return False
        try:
            self.consumer.topics()  # metadata round trip: does the broker answer?
        except Exception as exc:  # an outage, not a stall: the clock starts again
            log.warning("broker %s does not answer (%s): waiting", k.bootstrap, exc)
            self._waiting_since = time.monotonic()
            return False
        self._stalls += 1
        self.metrics.rejoins.inc()
        if self._stalls > k.rebalance_retries:
            raise RuntimeError(
                f"group {self.cfg.worker.group_id}: no partition assignment after "
                f"{k.rebalance_retries} re-joins with a fresh consumer, "
                f"{k.rebalance_timeout_s:.0f}s each"
            )
        log.error("group %s: no partition assignment for %.0fs: re-joining with a fresh "
                  "consumer (retry %d of %d)", self.cfg.worker.group_id,
                  time.monotonic() - since, self._stalls, k.rebalance_retries)  # fmt: skip
        return True

    def _rejoin(self) -> None:
        with self._lock:
            self._hand_over(set(self._owned))
        try:
            self.consumer.close(autocommit=False, timeout_ms=5000)
        except Exception as exc:
            log.warning("consumer close: %s", exc)
        self.consumer = self._make_consumer()

    def _idle_expired(self) -> bool:
        limit = self.opts.exit_when_idle_s
        if limit is None or not self._joined:
            return False
        return time.monotonic() - self._last_activity >= limit

    def _observe(self) -> None:
        if not self.metrics.progress_due():
            return
        try:
            lags = consumer_lag(self.consumer, list(self.consumer.assignment() or ()))
            self.metrics.set_lag({p: n for (_, p), n in lags.items()})
        except Exception as exc:  # best effort (broker busy, rebalance in progress)
            log.debug("consumer lag unavailable: %s", exc)
        self.metrics.progress(self.trainer.holder.version, self.owned, self.trainer.depth())

    def joined(self) -> bool:
        """Whether the group gave this worker its partitions (possibly none) at least once."""
        return self._joined

    def _close(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        if self.consumer is not None:  # revokes through the listener: trainer still running
            try:
                self.consumer.close(autocommit=False)
            except Exception as exc:  # the real error (if any) is already propagating
                log.warning("consumer close: %s", exc)
        self.trainer.stop()
        if self.notices is not None:
            self.notices.close()
        self.dlq.close()
        self.metrics.close()
        self.registry.close()
        if self.cfg.worker.gc_freeze:
            gc.unfreeze()

    # ---- rebalance hooks (kafka-python's IO thread, while poll() waits) -------------
    def on_revoked(self, partitions: set[int]) -> None:
        self._hand_over(partitions)

    def on_lost(self, partitions: set[int]) -> None:
        self._hand_over(partitions)

    def _hand_over(self, partitions: set[int]) -> None:
        with self._lock:
            gone = partitions & self._owned
            if not gone:
                return
            self.batcher.drop(gone)
            self.trainer.barrier(checkpoint=True)  # the next owner resumes from here
            self._owned -= gone
            self._joined = bool(self._owned)  # idle time waits for a new assignment
            if self._waiting_since is None:
                self._waiting_since = time.monotonic()
            log.info("partitions %s handed over at a checkpoint", sorted(gone))

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        with self._lock:
            for tp in sorted(assigned, key=lambda t: t.partition):
                p = tp.partition
                offset, marks = self.trainer.trained_position(p)
                self.batcher.assign(p, marks)
                if offset is None:
                    self.consumer.seek_to_beginning(tp)
                else:
                    self.consumer.seek(tp, offset)
                self._owned.add(p)
            self._last_activity = time.monotonic()
            self._joined = True
            self._waiting_since = None
            self._stalls = 0
