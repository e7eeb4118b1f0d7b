"""Rebalance bookkeeping, the idle clock and retry backoff, on a fake clock."""

from __future__ import annotations

from kafka import TopicPartition

from streamer.health import Backoff, IdleClock
from streamer.rebalance import Rebalances


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rebalances_record_and_void_an_assignment_revoked_before_the_poll_returned() -> None:
    clock = Clock()
    r = Rebalances(clock)
    assert not r.stable and r.stalled_for() == 0.0  # the first join is a rebalance too
    clock.now += 5
    assert r.stalled_for() == 5.0
    a, b = TopicPartition("t", 0), TopicPartition("t", 1)
    r.on_assigned({a})
    assert r.stable and r.stalled_for() == 0.0 and r.assignments == 1
    r.on_revoked({0})
    r.on_assigned({b})  # a second generation within the same poll
    r.on_revoked({1})  # and a third rebalance starts: {b} is void
    clock.now += 7
    assert r.stalled_for() == 7.0
    got = r.take()
    assert (got.revoked, got.lost, got.assigned) == ({0, 1}, set(), None)
    r.on_lost({1})
    r.on_assigned({a, b})
    got = r.take()
    assert (got.revoked, got.lost, got.assigned) == (set(), {1}, {a, b})
    assert r.take().assigned is None  # taken once
    r.on_revoked({0})
    clock.now += 50
    r.restart()
    assert r.stalled_for() == 0.0 and not r.stable


def test_idle_clock_counts_only_while_quiet() -> None:
    clock = Clock()
    idle = IdleClock(10.0, probe_every_s=1.0, clock=clock)
    quiet = {"now": True}
    probes: list[float] = []

    def probe() -> bool:
        probes.append(clock.now)
        return quiet["now"]

    for _ in range(9):
        clock.now += 1
        assert not idle.expired(probe)
    quiet["now"] = False  # e.g. the broker went away: idle time starts again
    clock.now += 1
    assert not idle.expired(probe)
    quiet["now"] = True
    for _ in range(9):
        clock.now += 1
        assert not idle.expired(probe)
    clock.now += 1
    assert idle.expired(probe)
    assert probes[-1] == clock.now  # the last probe is right before the expiry
    assert IdleClock(None, clock=clock).expired(probe) is False
    idle.busy()
    assert idle.idle_for() == 0.0


def test_idle_clock_does_not_expire_when_the_final_probe_fails() -> None:
    clock = Clock()
    idle = IdleClock(2.0, probe_every_s=100.0, clock=clock)
    clock.now += 2.5
    assert not idle.expired(lambda: False)  # lag found at the deadline: not idle
    clock.now += 2.5
    assert idle.expired(lambda: True)


def test_backoff_doubles_up_to_its_cap() -> None:
    clock = Clock()
    b = Backoff(0.5, 4.0, clock)
    assert not b.due()
    delays = []
    for _ in range(5):
        clock.now = b.next_at
        assert b.due()
        b.failed()
        delays.append(b.delay_s)
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0] and b.attempts == 5
