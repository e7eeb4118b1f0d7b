"""Rebalances as the polling thread sees them: callbacks record, the daemon acts.

kafka-python 3.x runs rebalance callbacks on the consumer's IO thread, inside the JoinGroup /
SyncGroup coroutine, while the caller of ``poll()`` waits. Blocking work there (draining the
outbox: producing and flushing possibly megabyte-sized records, store transactions, file
writes) stalls that event loop — heartbeats and the group protocol itself — and an exception
there surfaces as "User rebalance callback throws an error", hiding its cause. Also, in
kafka-python 3.0.12 ``join_group_async`` re-creates its JoinGroup -> SyncGroup task when the
previous one is done, whether or not that one succeeded: a join that completes while no
``poll()`` awaits it (the caller's timer ran out, e.g. behind a slow callback) is sent again
and its assignment dropped — the likely mechanism of the reported hang (SyncGroup answered,
``partitions=[]``; found by reading the client's code, not reproduced in isolation). Short
callbacks make that window small; the watchdog (:mod:`streamer.watchdog`) covers the rest.

So the callbacks (:class:`Rebalances`, the :class:`~streamer.kafka.consumer.PartitionOwner`
of the listener) only record what changed, under a lock, in O(1); the listener also pauses
newly assigned topic-partitions, so nothing is fetched before the polling thread has claimed
them. After every ``poll()`` the daemon :meth:`~Rebalances.take` s the changes and does the
work itself (drain + release revoked partitions, forget lost ones, claim + seek + resume
assigned ones) before it processes the next batch.

:meth:`Rebalances.stalled_for` is the watchdog's clock: how long a rebalance (first callback
of a revocation, or the consumer's creation) has gone without an assignment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kafka import TopicPartition


@dataclass
class Changes:
    """What happened since the last :meth:`Rebalances.take`."""

    revoked: set[int] = field(default_factory=set)  # drain, then release (still ours)
    lost: set[int] = field(default_factory=set)  # release only (another member may own them)
    assigned: set[TopicPartition] | None = None  # the latest complete assignment, if any


class Rebalances:
    """Thread-safe record of rebalance callbacks (IO thread) for the polling thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._changes = Changes()
        self._since: float | None = clock()  # a rebalance is running since (None: stable)
        self.assignments = 0  # completed assignments seen

    # -- callbacks (consumer IO thread): record only --------------------------------------
    def on_revoked(self, partitions: set[int]) -> None:
        self._start(partitions, lost=False)

    def on_lost(self, partitions: set[int]) -> None:
        self._start(partitions, lost=True)

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        with self._lock:
            self._changes.assigned = set(assigned)
            self._since = None
            self.assignments += 1

    def _start(self, partitions: set[int], lost: bool) -> None:
        with self._lock:
            (self._changes.lost if lost else self._changes.revoked).update(partitions)
            self._changes.assigned = None  # an earlier assignment is void (eager protocol)
            if self._since is None:
                self._since = self._clock()

    # -- polling thread --------------------------------------------------------------------
    def take(self) -> Changes:
        """The changes since the last call (and forget them)."""
        with self._lock:
            changes, self._changes = self._changes, Changes()
        return changes

    @property
    def stable(self) -> bool:
        """Whether the last rebalance completed (an assignment, possibly empty, arrived)."""
        with self._lock:
            return self._since is None

    def stalled_for(self) -> float:
        """Seconds the running rebalance has waited for its assignment (0 when stable)."""
        with self._lock:
            return 0.0 if self._since is None else self._clock() - self._since

    def restart(self) -> None:
        """A fresh consumer replaces the old one: its rebalance starts now."""
        with self._lock:
            self._changes = Changes()
            self._since = self._clock()
