"""Worker metrics: Prometheus series and the console progress line.

Counters: ``lt4rec_worker_examples_trained_total{task}``, ``lt4rec_worker_duplicates_total``,
``lt4rec_worker_dlq_total{reason}``, ``lt4rec_worker_steps_total``,
``lt4rec_worker_checkpoints_total``, ``lt4rec_worker_corrupt_checkpoints_total`` (versions
refused at start, marked ``corrupt`` in the registry), ``lt4rec_worker_drift_total{task}``.
Gauges: ``lt4rec_worker_rolling_auc{task}``, ``lt4rec_worker_rolling_logloss{task}``,
``lt4rec_worker_calibration{task}``, ``lt4rec_worker_consumer_lag{partition}``,
``lt4rec_worker_version``, ``lt4rec_worker_checkpoint_age_seconds``,
``lt4rec_worker_queue_batches``. Histograms: ``lt4rec_worker_step_seconds`` and
``lt4rec_worker_freshness_seconds`` (wall clock at the end of the step minus ``label_ts`` of
each clicked example: how long a positive label took from its event to the model, when event
time is wall time; one observation per positive keeps it off the per-row hot path).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import IO

from prometheus_client import Counter, Gauge, Histogram

from lt4rec.config import MetricsConfig
from streamer.metrics import ServedMetrics

_FRESH_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 30, 60, 120, 300, 900, 3600)


class WorkerMetrics(ServedMetrics):
    """The worker's series; totals mirrored for the progress line."""

    def __init__(self, cfg: MetricsConfig, stream: IO[str] | None = None) -> None:
        super().__init__(cfg, stream)
        r = self.registry
        self.trained = Counter(
            "lt4rec_worker_examples_trained", "Rows trained, by task", ["task"], registry=r
        )
        self.duplicates = Counter(
            "lt4rec_worker_duplicates", "Re-delivered examples skipped by dedup", registry=r
        )
        self.dlq = Counter(
            "lt4rec_worker_dlq", "Dead-lettered example records, by reason", ["reason"], registry=r
        )
        self.steps = Counter("lt4rec_worker_steps", "Optimiser steps", registry=r)
        self.checkpoints = Counter("lt4rec_worker_checkpoints", "Checkpoints written", registry=r)
        self.corrupt = Counter(
            "lt4rec_worker_corrupt_checkpoints",
            "Checkpoint versions refused at start (bad checksum, truncated, foreign)",
            registry=r,
        )
        self.drifts = Counter(
            "lt4rec_worker_drift", "Drift detections on the progressive logloss", ["task"],
            registry=r,
        )  # fmt: skip
        self.auc = Gauge("lt4rec_worker_rolling_auc", "Rolling exact AUC", ["task"], registry=r)
        self.logloss = Gauge(
            "lt4rec_worker_rolling_logloss", "Rolling logloss", ["task"], registry=r
        )
        self.calibration = Gauge(
            "lt4rec_worker_calibration", "Rolling mean predicted / observed", ["task"], registry=r
        )
        self.lag = Gauge(
            "lt4rec_worker_consumer_lag", "End offset minus position", ["partition"], registry=r
        )
        self.version = Gauge("lt4rec_worker_version", "Registry version trained on", registry=r)
        self.checkpoint_age = Gauge(
            "lt4rec_worker_checkpoint_age_seconds", "Seconds since the last checkpoint", registry=r
        )
        self.queue = Gauge("lt4rec_worker_queue_batches", "Batches waiting to train", registry=r)
        self.step_seconds = Histogram(
            "lt4rec_worker_step_seconds", "Seconds per micro-batch step", registry=r
        )
        self.freshness = Histogram(
            "lt4rec_worker_freshness_seconds", "Label event time -> trained, seconds",
            buckets=_FRESH_BUCKETS, registry=r,
        )  # fmt: skip
        self.totals = {"examples": 0, "duplicates": 0, "dlq": 0, "steps": 0}
        self.lag_total = 0
        self.rolling: dict[str, float] = {}
        self._last_examples = 0
        self.last_checkpoint = time.monotonic()

    def count_step(self, trained: Mapping[str, int], seconds: float) -> None:
        for task, n in trained.items():
            if n:
                self.trained.labels(task=task).inc(n)
        self.totals["examples"] += int(trained.get("ctr", 0))
        self.totals["steps"] += 1
        self.steps.inc()
        self.step_seconds.observe(seconds)

    def count_skipped(self, duplicates: int, reasons: list[str]) -> None:
        if duplicates:
            self.duplicates.inc(duplicates)
            self.totals["duplicates"] += duplicates
        for reason in reasons:
            self.dlq.labels(reason=reason).inc()
        self.totals["dlq"] += len(reasons)

    def observe_freshness(self, seconds: list[float]) -> None:
        for s in seconds:
            self.freshness.observe(s)

    def set_rolling(self, snap: Mapping[str, float]) -> None:
        self.rolling = dict(snap)
        for task in ("ctr", "cvr"):
            for gauge, key in ((self.auc, "auc"), (self.logloss, "logloss"),
                               (self.calibration, "calibration")):  # fmt: skip
                v = snap.get(f"{task}_{key}", math.nan)
                gauge.labels(task=task).set(v)

    def set_lag(self, lags: Mapping[int, int]) -> None:
        for p, n in lags.items():
            self.lag.labels(partition=str(p)).set(n)
        self.lag_total = sum(lags.values())

    def checkpointed(self, version: int) -> None:
        self.checkpoints.inc()
        self.version.set(version)
        self.last_checkpoint = time.monotonic()

    def progress(self, version: int | None, owned: list[int], queue: int) -> str:
        """One progress line: examples/s, lag, rolling AUCs, version."""
        now = time.monotonic()
        rate = (self.totals["examples"] - self._last_examples) / max(now - self._last_line, 1e-9)
        self._last_line, self._last_examples = now, self.totals["examples"]
        self.checkpoint_age.set(now - self.last_checkpoint)
        self.queue.set(queue)
        r = self.rolling
        return self.write_line(
            f"worker: version={version} partitions={owned} trained={self.totals['examples']} "
            f"({rate:,.0f}/s) lag={self.lag_total} queue={queue} "
            f"ctr_auc={r.get('ctr_auc', math.nan):.4f} cvr_auc={r.get('cvr_auc', math.nan):.4f} "
            f"dups={self.totals['duplicates']} dlq={self.totals['dlq']}"
        )
