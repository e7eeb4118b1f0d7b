"""The daemon's health checks: is it provably idle, is the broker there, is a rebalance stuck.

* :meth:`Watchdog.quiet` is the probe of :class:`streamer.health.IdleClock`: the group is
  stable and has assigned us once, no sink waits for a retry, the outbox is empty, the broker
  answers and every owned topic-partition has zero lag (end offset == position).
* :meth:`Watchdog.stalled` reports a rebalance that has waited longer than
  ``kafka.rebalance_timeout_s`` for its assignment while the broker answers (an outage is
  not a stall): it logs, counts ``lt4rec_joiner_retries_total{cause="rebalance_stall"}``,
  sets ``lt4rec_joiner_status`` to 1 and tells the daemon to re-join with a fresh consumer;
  after ``kafka.rebalance_retries`` such retries in a row it raises
  :class:`RebalanceStalled` (the CLI exits with status 3).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from typing import Any

from kafka import TopicPartition

from lt4rec.config import KafkaConfig
from streamer.kafka.consumer import consumer_lag
from streamer.metrics import JoinerMetrics
from streamer.rebalance import Rebalances

log = logging.getLogger(__name__)
PROBE_TIMEOUT_MS = 2000


class RebalanceStalled(RuntimeError):
    """No assignment after ``kafka.rebalance_retries`` retries with a fresh consumer."""


class Watchdog:
    """Health of one daemon (see module docstring); call from the polling thread."""

    def __init__(
        self,
        kafka: KafkaConfig,
        inputs: Iterable[str],
        rebalances: Rebalances,
        metrics: JoinerMetrics,
    ) -> None:
        self.kafka = kafka
        self.inputs = sorted(inputs)
        self.rebalances = rebalances
        self.metrics = metrics
        self.broker_ok = True
        self.stalls = 0  # stalled rebalances in a row

    def _probe(self, consumer: Any, owned: Collection[int]) -> dict[tuple[str, int], int] | None:
        """Lag of the owned topic-partitions (partition 0 answers for a member without any);
        None when the broker does not answer."""
        tps = [TopicPartition(t, p) for t in self.inputs for p in sorted(owned or {0})]
        try:
            lags = consumer_lag(consumer, tps, PROBE_TIMEOUT_MS) if owned else {}
            if not owned:
                consumer.end_offsets(tps, timeout_ms=PROBE_TIMEOUT_MS)
        except Exception as exc:  # KafkaTimeoutError & co: the broker is away
            self._broker(False, exc)
            return None
        self._broker(True)
        return lags

    def _broker(self, ok: bool, exc: Exception | None = None) -> None:
        if ok != self.broker_ok:
            if ok:
                log.warning("broker %s answers again", self.kafka.bootstrap)
            else:
                log.warning("broker %s does not answer (%s): not idle, waiting",
                            self.kafka.bootstrap, exc)  # fmt: skip
        self.broker_ok = ok

    def quiet(self, consumer: Any, owned: Collection[int], drained: bool) -> bool:
        """Provably nothing to do now (``drained``: no sink retry or outbox row waits)."""
        if not drained or not self.rebalances.stable or self.rebalances.assignments == 0:
            return False
        lags = self._probe(consumer, owned)
        if lags is None:
            return False
        return len(lags) == len(owned) * len(self.inputs) and not any(lags.values())

    def stalled(self, consumer: Any) -> bool:
        """Whether the daemon must re-join now with a fresh consumer (see module docstring)."""
        waited = self.rebalances.stalled_for()
        if waited < self.kafka.rebalance_timeout_s:
            return False
        if self._probe(consumer, ()) is None:  # an outage: the stall clock starts again
            self.rebalances.restart()
            return False
        self.stalls += 1
        self.metrics.count_retry("rebalance_stall")
        self.metrics.set_status("rebalance_stalled")
        group, retries = self.kafka.group_id, self.kafka.rebalance_retries
        if self.stalls > retries:
            raise RebalanceStalled(
                f"group {group}: no partition assignment after {retries} re-joins with a "
                f"fresh consumer, {self.kafka.rebalance_timeout_s:.0f}s each"
            )
        log.error("group %s: no partition assignment for %.0fs: re-joining with a fresh "
                  "consumer (retry %d of %d)", group, waited, self.stalls, retries)  # fmt: skip
        return True

    def status(self, sinks_retrying: bool) -> str:
        """The daemon's health now (a key of :data:`streamer.metrics.STATUS`)."""
        if self.stalls or self.rebalances.stalled_for() >= self.kafka.rebalance_timeout_s:
            return "rebalance_stalled"  # until an assignment arrives after the re-join
        if not self.broker_ok:
            return "broker_unreachable"
        return "sink_retrying" if sinks_retrying else "ok"
