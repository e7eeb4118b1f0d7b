"""When is the stream over, and when to try again: the idle clock and retry backoff.

``--exit-when-idle S`` must mean "S seconds in which there was provably nothing to do", not
"S seconds without records": during a broker outage no records arrive either, and taking that
for the end of the stream (then ``--flush-at-end`` closing every window) writes wrong labels.
:class:`IdleClock` therefore counts idle time only while a *quiet* probe keeps succeeding —
the broker answered, every owned topic-partition has zero lag, no sink is waiting for a
retry, no rebalance is running — and restarts from zero whenever a probe is not quiet. The
last probe runs right before the clock reports expiry, so the daemon never flushes while the
lag is known to be non-zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class IdleClock:
    """Idle time of the daemon, counted only while ``quiet()`` holds (see module docstring).

    ``limit_s`` None: never expires. ``probe_every_s``: how often ``quiet`` is asked while
    no records arrive (each probe may cost a broker round trip).
    """

    def __init__(
        self,
        limit_s: float | None,
        probe_every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit_s = limit_s
        self.probe_every_s = probe_every_s
        self._clock = clock
        self._since = clock()
        self._probed = float("-inf")

    def busy(self) -> None:
        """Something happened (records, a rebalance): idle time starts again from now."""
        self._since = self._clock()

    def idle_for(self) -> float:
        return self._clock() - self._since

    def expired(self, quiet: Callable[[], bool]) -> bool:
        """Whether the daemon has been quietly idle for ``limit_s`` (probing as it goes)."""
        if self.limit_s is None:
            return False
        now = self._clock()
        due = now - self._since >= self.limit_s
        if due or now - self._probed >= self.probe_every_s:
            self._probed = now
            if not quiet():
                self._since = self._clock()
                return False
        return due


class Backoff:
    """Exponential retry delays: ``first_s``, doubling up to ``max_s``."""

    def __init__(
        self, first_s: float = 0.5, max_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self._clock = clock
        self.delay_s = first_s
        self.attempts = 0
        self.next_at = clock() + first_s

    def due(self) -> bool:
        return self._clock() >= self.next_at

    def failed(self) -> None:
        """Another attempt failed: wait twice as long (at most ``max_s``) before the next."""
        self.attempts += 1
        self.delay_s = min(self.max_s, self.delay_s * 2)
        self.next_at = self._clock() + self.delay_s
