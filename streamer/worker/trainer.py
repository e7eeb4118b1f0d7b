"""The training thread and THE commit order of the worker.

The polling thread (:mod:`streamer.worker.daemon`) cuts micro-batches and queues them here; this
thread trains them one by one, in order. For every micro-batch (:meth:`Trainer._process`):

1. **train** — score the rows with the current weights (progressive validation), one masked
   optimiser step, the loss's own update (the polling thread encoded the batch with the
   model's spec; it is encoded again here if the model was swapped since);
2. **sinks** — the batch's dead letters are produced to ``topics.dlq`` and flushed;
3. **state** — the in-memory :class:`~streamer.worker.position.StreamPosition` advances to the
   batch's offsets and dedup marks;
4. **checkpoint** — every ``checkpoint_examples`` examples or ``checkpoint_seconds`` (and at
   revocation / exit): weights, optimiser, loss state, position, counters, metric windows and
   data range, as one registry version, durable before it is used;
5. **offsets** — the checkpoint's offsets are handed to the polling thread, which commits them
   to Kafka (lag monitoring; on start the worker seeks to the checkpoint's offsets, so a
   crash anywhere loses nothing and trains nothing twice).

The queue is bounded by ``worker.queue_batches``: the daemon pauses its partitions while
:meth:`Trainer.full` (and keeps polling), so a slow step neither grows memory nor breaks group
membership. :meth:`Trainer.swap_at_boundary` replaces the model holder between two batches
(after the queued ones, with the final catch-up run on this thread: the swap's pause);
``on_checkpoint`` is where publishing online versions hooks in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from checkpoints import Registry, VersionInfo
from lt4rec.config import AppConfig
from streamer.kafka.producer import ProducerSink
from streamer.worker.batching import Cut
from streamer.worker.checkpoint import save_online
from streamer.worker.encode import encode_cut
from streamer.worker.holder import ModelHolder, StepResult, WorkerError
from streamer.worker.metrics import WorkerMetrics
from streamer.worker.position import StreamPosition
from streamer.worker.progressive import ProgressiveMetrics
from streamer.worker.shadow import ShadowPublisher

log = logging.getLogger(__name__)


@dataclass
class _Barrier:
    checkpoint: bool
    done: threading.Event


@dataclass
class _Swap:
    """Swap to ``prepare(position)``'s holder at this batch boundary (see swap_at_boundary)."""

    prepare: Callable[[StreamPosition], ModelHolder]
    done: threading.Event
    pause_s: float = 0.0
    error: BaseException | None = None


# (cut, step result or None, wall time at the end of the step): tests and benchmarks
OnTrained = Callable[[Cut, StepResult | None, float], None]


class Trainer:
    """Trains queued cuts on a background thread (see module docstring)."""

    def __init__(
        self,
        cfg: AppConfig,
        holder: ModelHolder,
        position: StreamPosition,
        progress: ProgressiveMetrics,
        registry: Registry,
        metrics: WorkerMetrics,
        dlq: ProducerSink,
        on_trained: OnTrained | None = None,
        on_checkpoint: Callable[[VersionInfo], None] | None = None,
        on_drift: Callable[[str], None] | None = None,
    ) -> None:
        self.cfg, self.holder, self.position, self.progress = cfg, holder, position, progress
        self.registry, self.metrics, self.dlq = registry, metrics, dlq
        self.on_trained, self.on_checkpoint, self.on_drift = on_trained, on_checkpoint, on_drift
        self.lock = threading.Lock()  # position reads from the polling thread
        self._cv = threading.Condition()
        self._queue: deque[Cut | _Barrier | _Swap | None] = deque()
        self._commit: dict[int, int] | None = None
        self._durable = dict(position.offsets)  # of the newest durable checkpoint (or start)
        self._since_ckpt = 0  # examples trained since the last checkpoint
        self._dirty = False  # position moved since the last checkpoint
        self._last_ckpt = self._last_snap = time.monotonic()
        self.error: BaseException | None = None
        self.checkpoints = 0
        self.last_trained: float | None = None  # monotonic end of the last trained batch
        self.shadow: ShadowPublisher | None = None  # online publishing (streamer.worker.shadow)
        self._thread = threading.Thread(target=self._run, name="lt4rec-worker-train", daemon=True)

    # ---- the polling thread's side ---------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def put(self, cut: Cut) -> None:
        """Queue a cut (never blocks: the daemon pauses consumption while :meth:`full`)."""
        self._check()
        with self._cv:
            self._queue.append(cut)
            self._cv.notify()

    def full(self) -> bool:
        return len(self._queue) >= self.cfg.worker.queue_batches

    def wait_for_room(self, timeout_s: float) -> None:
        """Block until the queue is below its bound (or ``timeout_s`` passed)."""
        with self._cv:
            self._cv.wait_for(lambda: not self.full() or self.error is not None, timeout_s)

    def depth(self) -> int:
        return len(self._queue)

    def barrier(self, checkpoint: bool, timeout_s: float = 600.0) -> None:
        """Wait until every queued cut is trained (then checkpoint when ``checkpoint``)."""
        self._check()
        if not self._thread.is_alive():
            return  # not started or stopped: nothing is queued
        done = threading.Event()
        with self._cv:
            self._queue.append(_Barrier(checkpoint, done))
            self._cv.notify()
        deadline = time.monotonic() + timeout_s
        while not done.wait(0.05):
            self._check()
            if time.monotonic() > deadline:
                raise WorkerError(f"training did not drain within {timeout_s:.0f}s")
        self._check()

    def checkpoint_if_due(self) -> None:
        """Queue a checkpoint when ``checkpoint_seconds`` passed with untrained-upon progress
        (e.g. offsets moved over duplicates only, or a quiet stream): called every round."""
        if (
            self._dirty
            and not self._queue
            and time.monotonic() - self._last_ckpt >= self.cfg.worker.checkpoint_seconds
        ):
            with self._cv:
                self._queue.append(_Barrier(True, threading.Event()))
                self._cv.notify()

    def take_commit(self) -> dict[int, int] | None:
        """Offsets of the newest durable checkpoint not yet committed to Kafka."""
        with self.lock:
            out, self._commit = self._commit, None
        return out

    def durable_offsets(self) -> dict[int, int]:
        """Offsets of the newest durable checkpoint, whether or not already handed over
        (the final synchronous commit re-sends them: an earlier asynchronous commit of the
        same offsets may have failed or still be in flight when the consumer closes)."""
        with self.lock:
            return dict(self._durable)

    def trained_position(self, partition: int) -> tuple[int | None, dict[int, int]]:
        """(next offset or None, dedup marks) of ``partition`` as trained."""
        with self.lock:
            return self.position.offsets.get(partition), self.position.marks.of(partition)

    def trained_offsets(self, partitions: list[int]) -> dict[int, int]:
        """Next offset trained per partition (0 where nothing was trained yet)."""
        with self.lock:
            return {p: self.position.offsets.get(p, 0) for p in partitions}

    def swap_at_boundary(
        self, prepare: Callable[[StreamPosition], ModelHolder], timeout_s: float = 600.0
    ) -> float:
        """Swap the model between two batches; returns the pause (seconds).

        Queued after the cuts already waiting: when it is its turn, the training thread
        calls ``prepare(position)`` — the final catch-up of the new model to exactly the
        trained position — and trains with its holder from the next batch on. While it runs
        no batch is trained: that is the swap's pause. An error keeps the old holder.
        """
        self._check()
        item = _Swap(prepare, threading.Event())
        with self._cv:
            self._queue.append(item)
            self._cv.notify()
        if not item.done.wait(timeout_s):
            raise WorkerError(f"the swap did not happen within {timeout_s:.0f}s")
        if item.error is not None:
            raise WorkerError(f"the swap failed: {item.error!r}") from item.error
        return item.pause_s

    def stop(self) -> None:
        with self._cv:
            self._queue.append(None)
            self._cv.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def _check(self) -> None:
        if self.error is not None:
            raise WorkerError(f"training thread failed: {self.error!r}") from self.error

    # ---- the training thread ---------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._cv:
                    while not self._queue:
                        self._cv.wait()
                    item = self._queue[0]
                if item is None:
                    return
                if isinstance(item, _Swap):
                    self._swap(item)
                elif isinstance(item, _Barrier):
                    if item.checkpoint and self._dirty:
                        self._checkpoint()
                    item.done.set()
                else:
                    self._process(item)
                with self._cv:
                    self._queue.popleft()  # popped after processing: depth counts it
                    self._cv.notify_all()  # room for the polling thread
        except BaseException as exc:
            log.exception("training thread failed")
            self.error = exc

    def _swap(self, item: _Swap) -> None:
        t0 = time.perf_counter()
        try:
            holder = item.prepare(self.position)
        except Exception as exc:  # the old model keeps training
            item.error = exc
        else:
            self.holder = holder
            self._dirty = True  # the next checkpoint is the new lineage's first
        item.pause_s = time.perf_counter() - t0
        item.done.set()

    def _process(self, cut: Cut) -> None:
        """THE commit order for one micro-batch (module docstring)."""
        t0 = time.perf_counter()
        result = self._train(cut)  # 1. train
        if self.shadow is not None:  # the champion scores the same rows (advisory)
            try:
                self.shadow.observe(cut, result, self.holder)
            except Exception:
                log.exception("shadow scoring failed: online publishing skips this batch")
        if cut.dead:  # 2. sinks
            self.dlq.send_rows(self.cfg.topics.dlq, cut.dead)
        trained = dict(result.trained) if result else {}
        n = max(trained.values(), default=0)  # rows that entered at least one task's loss
        counts = {**trained, "examples": n, "batches": 1 if cut.examples else 0}
        counts["steps"] = 1 if result and result.losses else 0
        with self.lock:  # 3. state
            self.position.advance(cut.advance, counts)
        self._since_ckpt += n
        self._dirty = True
        self.metrics.count_skipped(cut.advance.duplicates, cut.dead_reasons)
        end = time.time()
        self.last_trained = time.monotonic()
        if result is not None:
            self.metrics.count_step(result.trained, time.perf_counter() - t0)
            ci = self.holder.encoder.click_index  # label freshness of the clicked examples
            self.metrics.observe_freshness(
                [end - e.label_ts / 1000.0 for e in cut.examples if e.values[ci] == 1]
            )
        if self.on_trained is not None:
            self.on_trained(cut, result, end)
        if time.monotonic() - self._last_snap >= 1.0:  # the metrics read by the progress line
            self.metrics.set_rolling(self.progress.snapshot())
            self._last_snap = time.monotonic()
        w = self.cfg.worker
        if (
            self._since_ckpt >= w.checkpoint_examples
            or time.monotonic() - self._last_ckpt >= w.checkpoint_seconds
        ):
            self._checkpoint()  # 4. checkpoint (5. offsets: handed over inside)

    def _train(self, cut: Cut) -> StepResult | None:
        encoder = self.holder.encoder
        if cut.encoded is None or cut.encoded[0] is not encoder:  # not yet, or swapped since
            encode_cut(cut, encoder, self.cfg.topics.examples)
        _, batch, meta = cut.encoded
        if batch is None or meta is None:
            return None
        result = self.holder.step(batch, meta)
        for t in self.progress.add(result.scores):
            self.metrics.drifts.labels(task=t).inc()
            if self.on_drift is not None:
                self.on_drift(t)
        return result

    def _checkpoint(self) -> None:
        # only this thread writes the position: no lock needed to read it here
        info = save_online(self.registry, self.cfg, self.holder, self.position, self.progress)
        self.holder.version = info.version
        with self.lock:
            self._commit = dict(self.position.offsets)  # 5. offsets, after the durable write
            self._durable = dict(self._commit)
        self._since_ckpt, self._dirty, self._last_ckpt = 0, False, time.monotonic()
        self.checkpoints += 1
        self.metrics.checkpointed(info.version)
        self.metrics.set_rolling(self.progress.snapshot())
        log.info("checkpoint: online version %d (parent %s)", info.version, info.parent)
        if self.shadow is not None:
            try:
                self.shadow.on_checkpoint(info, self.holder)
            except Exception:  # publishing is advisory: training goes on
                log.exception("online publishing of version %d failed", info.version)
        if self.on_checkpoint is not None:
            self.on_checkpoint(info)
