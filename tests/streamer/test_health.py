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


class LagConsumer:
    """end_offsets / position of a fake consumer (``ends`` None: the broker is away)."""

    def __init__(self) -> None:
        self.ends: dict | None = {}
        self.positions: dict = {}

    def end_offsets(self, tps, timeout_ms=None):
        if self.ends is None:
            from kafka.errors import KafkaTimeoutError

            raise KafkaTimeoutError("no broker")
        return {tp: self.ends.get(tp, 0) for tp in tps}

    def position(self, tp, timeout_ms=None):
        return self.positions.get(tp, 0)


def test_quiet_needs_a_stable_group_an_answering_broker_and_zero_lag() -> None:
    from lt4rec.config import KafkaConfig, MetricsConfig
    from streamer.metrics import JoinerMetrics
    from streamer.watchdog import Watchdog

    clock = Clock()
    r = Rebalances(clock)
    w = Watchdog(KafkaConfig(), ["imp", "clk", "cnv"], r, JoinerMetrics(MetricsConfig()))
    c = LagConsumer()
    assert not w.quiet(c, {0}, drained=True)  # never assigned yet
    r.on_assigned({TopicPartition(t, 0) for t in ("imp", "clk", "cnv")})
    assert w.quiet(c, {0}, drained=True)
    assert not w.quiet(c, {0}, drained=False)  # an outbox row or a sink retry waits
    c.ends = {TopicPartition("clk", 0): 5}
    c.positions = {TopicPartition("clk", 0): 4}
    assert not w.quiet(c, {0}, drained=True)  # lag 1: not idle
    c.positions = {TopicPartition("clk", 0): 5}
    assert w.quiet(c, {0}, drained=True) and w.broker_ok
    c.ends = None
    assert not w.quiet(c, {0}, drained=True) and not w.broker_ok  # the broker is away
    assert not w.quiet(c, set(), drained=True)  # also for a member without partitions
    assert w.status(sinks_retrying=False) == "broker_unreachable"
    c.ends = {}
    assert w.quiet(c, set(), drained=True) and w.status(sinks_retrying=True) == "sink_retrying"
    r.on_revoked({0})
    assert not w.quiet(c, {0}, drained=True)  # a rebalance runs
