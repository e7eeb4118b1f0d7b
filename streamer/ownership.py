"""The join partitions one daemon owns: claims, releases, recovery and delivery retries.

All of it runs on the polling thread (:mod:`streamer.rebalance` says why): after each
``poll()`` the daemon hands the recorded rebalance :class:`~streamer.rebalance.Changes` to
:meth:`Ownership.apply` — revoked partitions are drained (outbox, archive) and released,
lost ones released, newly assigned complete ones claimed (fencing any older owner), sought
to the store's next offsets and resumed. A claimed partition first re-delivers its outbox
and sealed chunks (:meth:`recover_pending`). A partition whose sinks fail for now is paused
and retried with exponential backoff (:meth:`stall`, :meth:`retry_stalled`); when its
delivery succeeds it is sought back to the store's offsets (records fetched meanwhile were
left out) and resumed. Another owner's claim (:class:`Fenced`) drops a partition.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from kafka import TopicPartition

from streamer.delivery import Delivery
from streamer.health import Backoff
from streamer.joiner import Fenced, JoinEngine
from streamer.kafka.producer import SinkError
from streamer.metrics import JoinerMetrics
from streamer.rebalance import Changes

log = logging.getLogger(__name__)


class Ownership:
    """Owned join partitions and their bookkeeping (``consumer()`` gives the live consumer)."""

    def __init__(
        self,
        engine: JoinEngine,
        delivery: Delivery,
        inputs: list[str],
        consumer: Callable[[], Any],
        metrics: JoinerMetrics,
    ) -> None:
        self.engine = engine
        self.delivery = delivery
        self.inputs = inputs
        self.consumer = consumer
        self.metrics = metrics
        self.owned: set[int] = set()
        self.recover: set[int] = set()  # claimed, outbox / sealed chunks not yet re-delivered
        self.stalled: dict[int, Backoff] = {}  # sinks failed: paused, retried with backoff

    def ready(self) -> set[int]:
        """Partitions whose records may be processed now."""
        return self.owned - set(self.stalled)

    # -- rebalances ------------------------------------------------------------------------
    def apply(self, changes: Changes) -> bool:
        """Revocations (drain, release), losses (release), then the new assignment; whether
        an assignment arrived."""
        for p in sorted(changes.revoked & self.owned):
            self.finish(p, flush=False)
            self.release(p)
        for p in sorted(changes.lost & self.owned):
            self.release(p)
        if changes.assigned is None:
            return False
        by_p: dict[int, set[str]] = defaultdict(set)
        for tp in changes.assigned:
            by_p[tp.partition].add(tp.topic)
        for p in sorted(self.owned - set(by_p)):
            self.release(p)
        for p, topics in sorted(by_p.items()):
            if topics != set(self.inputs):
                log.warning("partition %d incomplete (%s): paused", p, sorted(topics))
                continue  # stays paused (the listener paused every assigned partition)
            self.engine.claim(p)
            self.owned.add(p)
            self.recover.add(p)
            self.delivery.claimed(p)
            self.resume(p)
        return True

    def finish(self, p: int, flush: bool) -> None:
        """Close every window first if ``flush``; deliver and seal everything of ``p``."""
        try:
            if flush:
                self.engine.flush_all(p)
            self.delivery.drain(p, seal_all=True, recover=p in self.recover or p in self.stalled)
            if flush:
                self.delivery.mark_complete(p, ended=True)
        except Fenced:  # e.g. revoked, and the new owner claimed it before we drained
            log.info("partition %d: claimed by its new owner first; it re-delivers the rest", p)
        except SinkError as exc:  # the outbox keeps it: the next owner re-delivers
            log.warning("partition %d: sinks not drained (%s); the outbox keeps it", p, exc)

    def release(self, p: int) -> None:
        try:
            self.engine.release(p)
        except Exception:  # releasing is bookkeeping only; never fail a rebalance on it
            log.exception("release of partition %d failed", p)
        self.drop(p)

    def drop(self, p: int) -> None:
        self.owned.discard(p)
        self.recover.discard(p)
        self.stalled.pop(p, None)

    def fenced(self, p: int) -> None:
        """Another owner claimed ``p``: stop fetching it until the group reassigns it."""
        log.warning("partition %d fenced: another owner claimed it", p)
        self.drop(p)
        self.pause(p)

    def guarded(self, p: int, fn: Callable[..., Any], *args: Any) -> None:
        """``fn(*args)``; a :class:`Fenced` drops ``p``, a :class:`SinkError` stalls it."""
        try:
            fn(*args)
        except Fenced:
            self.fenced(p)
        except SinkError as exc:
            self.stall(p, exc)

    def pause(self, p: int) -> None:
        self.consumer().pause(*(TopicPartition(t, p) for t in self.inputs))

    def resume(self, p: int) -> None:
        """Seek to the store's next offsets (the beginning if none), then fetch again."""
        part = self.engine.stats().partitions.get(p)
        offsets = part.next_offsets if part is not None else {}
        tps = [TopicPartition(t, p) for t in self.inputs]
        for tp in tps:
            self.consumer().seek(tp, int(offsets.get(tp.topic, 0)))
        self.consumer().resume(*tps)

    # -- recovery and retries --------------------------------------------------------------
    def recover_pending(self) -> None:
        """Re-deliver the outbox and sealed chunks of newly claimed partitions first."""
        for p in sorted(self.recover):
            self.guarded(p, self.delivery.drain, p, False, True)
            self.recover.discard(p)

    def stall(self, p: int, exc: Exception) -> None:
        """The broker cannot take ``p``'s outputs now: pause ``p``, retry with backoff."""
        log.warning("partition %d: delivery failed, paused until it succeeds: %s", p, exc)
        self.stalled.setdefault(p, Backoff())
        self.pause(p)
        self.metrics.count_retry("sink")

    def retry_stalled(self) -> None:
        for p, backoff in sorted(self.stalled.items()):
            if not backoff.due():
                continue
            try:
                self.delivery.drain(p, recover=True)
            except SinkError as exc:
                backoff.failed()
                log.warning("partition %d: delivery retry %d failed (next in %.0fs): %s",
                            p, backoff.attempts, backoff.delay_s, exc)  # fmt: skip
                continue
            except Fenced:
                self.fenced(p)
                continue
            log.info("partition %d: delivery recovered after %d retries", p, backoff.attempts)
            del self.stalled[p]
            self.resume(p)  # records fetched while paused were left out: fetch them again
