"""Hot-swap: follow ``topics.models`` and replace the worker's model without stopping.

A :class:`ModelFollower` thread reads the notices (:class:`streamer.notices.NoticeFollower`,
which also asks the registry, so a notice missed while the worker was down is not lost) and
applies a notice when it is

* a **re-pruned** version newer than the one the worker's lineage started from, or
* a **rollback** to any version other than the worker's current or base one.

Applying one (:meth:`ModelFollower.apply`): verify and load the version in this thread
(registry sha256 + file checksum; a bad one is refused, counted, and the old model keeps
training), build its :class:`~streamer.worker.holder.ModelHolder`, and catch it up
(:mod:`streamer.worker.catchup`) on the examples its data does not cover while the live
worker keeps training the old model; repeat towards the moving live position until fewer than
``publish.swap_gap_rows`` records are left; then the training thread, at a batch boundary,
catches it up to exactly the trained position and switches
(:meth:`~streamer.worker.trainer.Trainer.swap_at_boundary`). That last step is the pause; the
next checkpoint is an ``online`` version whose parent is the new version.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from checkpoints import Notice, Registry, RegistryError, VersionInfo, verify_file
from checkpoints.format import CorruptCheckpointError
from lt4rec.config import AppConfig
from streamer.notices.follower import NoticeFollower
from streamer.worker.catchup import CatchUp
from streamer.worker.coverage import Coverage
from streamer.worker.holder import ModelHolder, WorkerError
from streamer.worker.position import StreamPosition

if TYPE_CHECKING:
    from streamer.worker.daemon import WorkerDaemon

log = logging.getLogger(__name__)
MAX_ROUNDS = 20  # catch-up rounds towards the moving live position before the final swap


class _Moved(Exception):
    """The worker's partitions changed while a catch-up ran: start it again."""


@dataclass(frozen=True)
class SwapRecord:
    """One applied (or refused) notice."""

    version: int
    action: str
    kind: str
    ok: bool
    reason: str = ""
    pause_ms: float = 0.0  # training stopped for this long (final catch-up + switch)
    catchup_s: float = 0.0  # loading + catch-up, while the old model kept training
    caught_up: int = 0  # uncovered examples the new model trained before switching
    covered: int = 0  # examples skipped: already in the version's data

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def lineage_base(reg: Registry, version: int | None) -> int | None:
    """The newest non-online ancestor of ``version`` (itself when it is not online)."""
    seen = set()
    while version is not None and version not in seen:
        seen.add(version)
        info = reg.get(version)
        if info.kind != "online":
            return version
        version = info.parent
    return None


class ModelFollower:
    """Applies model notices to one worker (see module docstring)."""

    def __init__(self, cfg: AppConfig, daemon: WorkerDaemon) -> None:
        self.cfg, self.daemon = cfg, daemon
        self.registry = Registry(cfg.registry)
        self.base = lineage_base(self.registry, daemon.trainer.holder.version)
        self.records: list[SwapRecord] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lt4rec-worker-follow", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.registry.close()

    def wanted(self, n: Notice) -> bool:
        current = self.daemon.trainer.holder.version
        if n.version in (current, self.base):
            return False
        if n.action == "rollback":
            return True
        return n.kind == "repruned" and n.version > (self.base or 0)

    def _run(self) -> None:
        follower = NoticeFollower(
            self.cfg.kafka, self.cfg.topics, self.registry, start="newest",
            registry_poll_s=self.cfg.publish.registry_poll_s, client_suffix="worker-follower",
        )  # fmt: skip
        try:
            while not self._stop.is_set():
                for notice in follower.poll(timeout_s=0.5):
                    if self._stop.is_set():
                        return
                    if self.wanted(notice):
                        self.apply(notice)
        except Exception:  # following is best effort: training goes on with the old model
            log.exception("model follower stopped")
        finally:
            follower.close()

    def apply(self, n: Notice) -> SwapRecord:
        t0 = time.perf_counter()
        try:
            record = self._apply_retrying(n, t0)
        except (CorruptCheckpointError, RegistryError, WorkerError, OSError) as exc:
            record = SwapRecord(n.version, n.action, n.kind, False, str(exc)[:500],
                                catchup_s=time.perf_counter() - t0)  # fmt: skip
            log.error("not swapping to version %d: %s", n.version, exc)
            self.daemon.metrics.swap_refused.inc()
        self.records.append(record)
        return record

    def _apply_retrying(self, n: Notice, t0: float) -> SwapRecord:
        """:meth:`_apply`, again when a rebalance changed the partitions during the catch-up."""
        while not self.daemon.joined():  # the partitions to catch up are not known yet
            if self._stop.wait(0.2):
                raise WorkerError("stopped before the first assignment")
        for attempt in range(3):
            try:
                return self._apply(n, t0)
            except _Moved:
                log.warning("partitions moved during the catch-up (attempt %d)", attempt + 1)
        raise WorkerError("partitions kept moving during the catch-up: not swapped")

    def _apply(self, n: Notice, t0: float) -> SwapRecord:
        info: VersionInfo = self.registry.get(n.version)
        ckpt = verify_file(n.path, n.sha256)  # what was announced, byte for byte
        holder = ModelHolder.from_checkpoint(ckpt, self.cfg, info.version)
        coverage = Coverage.of(info, ckpt, self.cfg.topics.examples)
        trainer = self.daemon.trainer
        parts = self.daemon.owned
        catch = CatchUp(self.cfg, holder, coverage, parts)
        try:
            for _ in range(MAX_ROUNDS):
                target = trainer.trained_offsets(parts)
                catch.advance_to(target)
                if catch.gap(trainer.trained_offsets(parts)) <= self.cfg.publish.swap_gap_rows:
                    break

            def prepare(position: StreamPosition) -> ModelHolder:
                if set(self.daemon.owned) != set(parts):
                    raise _Moved()
                catch.advance_to({p: position.offsets.get(p, 0) for p in parts})
                return holder

            try:
                pause = trainer.swap_at_boundary(prepare)
            except WorkerError as exc:
                if isinstance(exc.__cause__, _Moved):
                    raise _Moved() from exc
                raise
        finally:
            catch.close()
        self.base = lineage_base(self.registry, info.version)
        s = catch.stats
        record = SwapRecord(
            n.version, n.action, n.kind, True, "", pause * 1000.0,
            time.perf_counter() - t0 - pause, s.trained, s.covered,
        )  # fmt: skip
        self.daemon.metrics.swapped(record.pause_ms / 1000.0, info.version)
        log.warning(
            "swapped to %s version %d (%s): pause %.1f ms, caught up %d examples in %.1f s",
            n.kind, n.version, n.action, record.pause_ms, s.trained, record.catchup_s,
        )  # fmt: skip
        return record
