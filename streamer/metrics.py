"""Joiner metrics: Prometheus counters / gauges and a periodic console progress line.

:class:`ServedMetrics` is the part every daemon shares (its own registry, the optional HTTP
endpoint, the progress-line clock); the worker's metrics build on it too.
One :class:`JoinerMetrics` per daemon, on its own registry (several joiners can live in one
test process). Counters: events in by type, examples out by kind, DLQ records by reason,
archive rows, and everything dropped or changed on the way (duplicates and out-of-window
labels, late events, forced closes, archive values coerced to null, records the broker
refused, rebalance stalls, sink and store retries). Gauges: pending state size, watermark lag
(now - watermark), consumer lag (end offset - position) per partition, and the daemon's
``status`` (:data:`STATUS`). The HTTP endpoint starts only when ``metrics.port > 0``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import IO, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from lt4rec.config import MetricsConfig

# lt4rec_joiner_status: 0 while healthy, else why not (the progress line names it)
STATUS = {"ok": 0, "rebalance_stalled": 1, "broker_unreachable": 2, "sink_retrying": 3}


class ServedMetrics:
    """A metrics registry of one daemon, its optional HTTP endpoint and progress-line timing."""

    def __init__(self, cfg: MetricsConfig, stream: IO[str] | None = None) -> None:
        self.cfg = cfg
        self.registry = CollectorRegistry()
        self._stream = stream if stream is not None else sys.stderr
        self._server: Any = None
        self._last_line = time.monotonic()

    def serve(self) -> int:
        """Start the HTTP endpoint when configured; returns the port (0 = disabled)."""
        if self.cfg.port <= 0:
            return 0
        self._server, _thread = start_http_server(
            self.cfg.port, addr=self.cfg.host, registry=self.registry
        )
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def progress_due(self) -> bool:
        interval = self.cfg.progress_interval_s
        return interval > 0 and time.monotonic() - self._last_line >= interval

    def write_line(self, line: str) -> str:
        print(line, file=self._stream, flush=True)
        return line


class JoinerMetrics(ServedMetrics):
    """The daemon's metrics; plain totals are mirrored in attributes for the progress line."""

    def __init__(self, cfg: MetricsConfig, stream: IO[str] | None = None) -> None:
        super().__init__(cfg, stream)
        self.events_in = Counter(
            "lt4rec_joiner_events_in",
            "Input events consumed, by type (invalid = DLQ)",
            ["type"],
            registry=self.registry,
        )
        self.examples_out = Counter(
            "lt4rec_joiner_examples_out",
            "Examples produced, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.dlq = Counter(
            "lt4rec_joiner_dlq",
            "Dead-lettered records, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.archive_rows = Counter(
            "lt4rec_joiner_archive_rows",
            "Rows written to the Parquet archive",
            registry=self.registry,
        )
        self.pending = Gauge(
            "lt4rec_joiner_pending",
            "Pending state entries (impressions, orphans, tombstones)",
            registry=self.registry,
        )
        self.watermark_lag = Gauge(
            "lt4rec_joiner_watermark_lag_seconds",
            "Wall clock minus event-time watermark",
            ["partition"],
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "lt4rec_joiner_consumer_lag",
            "End offset minus consumer position",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "lt4rec_joiner_dropped",
            "Labels and events that changed nothing, by reason (duplicate_<type>, "
            "out_of_window_<type>: e.g. a conversion before its click)",
            ["reason"],
            registry=self.registry,
        )
        self.late = Counter(
            "lt4rec_joiner_late_events",
            "Events older than the watermark on arrival, by type",
            ["type"],
            registry=self.registry,
        )
        self.forced_close = Counter(
            "lt4rec_joiner_forced_close",
            "Windows closed early because joiner.max_pending was reached",
            registry=self.registry,
        )
        self.coerced = Counter(
            "lt4rec_joiner_archive_coerced",
            "Archive feature values that did not fit their column type and became null",
            registry=self.registry,
        )
        self.undeliverable = Counter(
            "lt4rec_joiner_undeliverable",
            "Records the broker refused for good, by sink and outcome (diverted, dropped)",
            ["sink", "outcome"],
            registry=self.registry,
        )
        self.retries = Counter(
            "lt4rec_joiner_retries",
            "Retries after transient failures, by cause (sink, store, rebalance_stall)",
            ["cause"],
            registry=self.registry,
        )
        self.status = Gauge(
            "lt4rec_joiner_status",
            "0 = healthy, 1 = rebalance stalled, 2 = broker unreachable, 3 = sink retrying",
            registry=self.registry,
        )
        self.status_name = "ok"
        self.totals: dict[str, float] = {
            "in": 0, "examples": 0, "dlq": 0, "archive": 0, "dropped": 0, "coerced": 0,
        }  # fmt: skip
        self.lag_total = 0
        self.pending_now = 0
        self._last_in = 0.0

    # --- counters -------------------------------------------------------------------
    def count_in(self, counts: Mapping[str, int]) -> None:
        for kind, n in counts.items():
            if n:
                self.events_in.labels(type=kind).inc(n)
                self.totals["in"] += n

    def count_examples(self, kinds: list[str]) -> None:
        """Count produced examples by kind (``final``, ``fast``, ``delayed_positive``...)."""
        by_kind: dict[str, int] = {}
        for kind in kinds:
            by_kind[kind] = by_kind.get(kind, 0) + 1
        for kind, n in by_kind.items():
            self.examples_out.labels(kind=kind).inc(n)
        self.totals["examples"] += len(kinds)

    def count_dlq(self, reasons: list[str]) -> None:
        by_reason: dict[str, int] = {}
        for r in reasons:
            by_reason[r] = by_reason.get(r, 0) + 1
        for reason, n in by_reason.items():
            self.dlq.labels(reason=reason).inc(n)
        self.totals["dlq"] += len(reasons)

    def count_archive(self, rows: int, coerced: int = 0) -> None:
        self.archive_rows.inc(rows)
        self.totals["archive"] += rows
        if coerced:
            self.coerced.inc(coerced)
            self.totals["coerced"] += coerced

    def count_engine(self, counters: Mapping[str, int]) -> None:
        """Export what one engine transaction counted (``ProcessResult.counters``)."""
        for name, n in counters.items():
            group, _, kind = name.partition(".")
            if group in ("duplicates", "out_of_window"):
                reason = f"duplicate_{kind}" if group == "duplicates" else f"out_of_window_{kind}"
                self.dropped.labels(reason=reason).inc(n)
                self.totals["dropped"] += n
            elif group == "late":
                self.late.labels(type=kind).inc(n)
            elif name == "forced_close":
                self.forced_close.inc(n)

    def count_undeliverable(self, sink: str, refused: int, dropped: int) -> None:
        """``refused`` records of ``sink`` the broker would not take; ``dropped`` of them
        could not even be dead-lettered (logged)."""
        self.undeliverable.labels(sink=sink, outcome="diverted").inc(refused - dropped)
        if dropped:
            self.undeliverable.labels(sink=sink, outcome="dropped").inc(dropped)

    def count_retry(self, cause: str) -> None:
        self.retries.labels(cause=cause).inc()

    def set_status(self, name: str) -> None:
        """The daemon's health (a key of :data:`STATUS`), as a gauge and on the progress line."""
        self.status.set(STATUS[name])
        self.status_name = name

    # --- gauges ---------------------------------------------------------------------
    def set_pending(self, n: int) -> None:
        self.pending.set(n)
        self.pending_now = n

    def set_watermark(self, partition: int, watermark_ms: int | None) -> None:
        if watermark_ms is not None:
            lag = time.time() - watermark_ms / 1000.0
            self.watermark_lag.labels(partition=str(partition)).set(lag)

    def set_consumer_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic=topic, partition=str(partition)).set(lag)
        self.lag_total = sum(lags.values())

    # --- console --------------------------------------------------------------------
    def progress(self, owned: list[int]) -> str:
        """Write one progress line to the console and return it."""
        now = time.monotonic()
        rate = (self.totals["in"] - self._last_in) / max(now - self._last_line, 1e-9)
        self._last_line, self._last_in = now, self.totals["in"]
        t = self.totals
        line = (
            f"joiner: partitions={owned} in={int(t['in'])} ({rate:,.0f}/s) "
            f"examples={int(t['examples'])} dlq={int(t['dlq'])} archive={int(t['archive'])} "
            f"dropped={int(t['dropped'])} coerced={int(t['coerced'])} "
            f"pending={self.pending_now} lag={self.lag_total} status={self.status_name}"
        )
        return self.write_line(line)
