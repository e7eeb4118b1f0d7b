"""Prometheus metrics of a prediction server process (``GET /metrics``).

One :class:`ServeMetrics` per process on its own registry. With ``--workers N`` the server
runs prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` is set before the
workers start): every worker writes its samples to the shared directory and ``/metrics``
of any worker reports the sum over workers (gauges: one series per worker ``pid``).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class ServeMetrics:
    """Counters of requests, refusals, swaps and load errors; gauges of the served version."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            "lt4rec_serve_requests", "HTTP requests by endpoint and status", ["endpoint", "code"],
            registry=reg,
        )  # fmt: skip
        self.latency = Histogram(
            "lt4rec_serve_predict_seconds", "Time to answer /predict (successful requests)",
            buckets=LATENCY_BUCKETS, registry=reg,
        )  # fmt: skip
        self.instances = Counter(
            "lt4rec_serve_instances", "Instances scored by /predict", registry=reg
        )
        self.refused = Counter(
            "lt4rec_serve_refused", "Refused requests by reason (4xx / 503)", ["reason"],
            registry=reg,
        )  # fmt: skip
        self.swaps = Counter(
            "lt4rec_serve_swaps", "Model swaps by action (publish / rollback)", ["action"],
            registry=reg,
        )  # fmt: skip
        self.load_seconds = Histogram(
            "lt4rec_serve_model_load_seconds", "Verify + build + warm-up time of a new version",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0), registry=reg,
        )  # fmt: skip
        self.load_errors = Counter(
            "lt4rec_serve_model_load_errors",
            "Published versions refused (corrupt, unservable); the old model kept serving",
            ["reason"], registry=reg,
        )  # fmt: skip
        self.notices_malformed = Counter(
            "lt4rec_serve_notices_malformed", "Malformed records on the models topic (skipped)",
            registry=reg,
        )  # fmt: skip
        self.version = Gauge(
            "lt4rec_serve_model_version", "Registry version being served (0 = none)",
            registry=reg, multiprocess_mode="liveall",
        )  # fmt: skip
        self.publication = Gauge(
            "lt4rec_serve_model_publication", "Publication id being served", registry=reg,
            multiprocess_mode="liveall",
        )  # fmt: skip
        self.published_at = Gauge(
            "lt4rec_serve_model_published_timestamp_seconds",
            "When the served version was published (freshness = time() - this)",
            registry=reg, multiprocess_mode="liveall",
        )  # fmt: skip
        for reason in ("corrupt", "unservable"):
            self.load_errors.labels(reason=reason)  # exported as 0 before the first error

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition (all workers' in multiprocess mode) and its content type."""
        if multiprocess():
            from prometheus_client import multiprocess as mp

            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
