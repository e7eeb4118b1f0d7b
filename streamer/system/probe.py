"""What the main job reads from its daemons: Prometheus endpoints, the server's JSON, /predict.

Standard library HTTP only (the daemons are local): :func:`scrape` parses a Prometheus text
exposition into ``{(name, labels): value}``; :class:`PredictLoad` is a bounded load of
keep-alive clients posting ``/predict`` that records every answer's status and model version
(the swap check: zero errors, only versions that were in service).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from streamer.system.procs import raise_if_interrupted

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def get_json(url: str, timeout_s: float = 5.0) -> Any:
    """GET ``url`` as JSON (any status); None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        try:
            return json.loads(exc.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None


def scrape(url: str, timeout_s: float = 5.0) -> Samples:
    """Every sample of a Prometheus endpoint; empty when it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            text = r.read().decode("utf-8", "replace")
    except OSError:
        return {}
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value (None when absent)."""
    return samples.get((name, tuple(sorted(labels.items()))))


def wait_until(check: Any, timeout_s: float, every_s: float = 0.5, what: str = "") -> float:
    """Seconds until ``check()`` is truthy; TimeoutError after ``timeout_s``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        raise_if_interrupted()
        if check():
            return time.monotonic() - t0
        time.sleep(every_s)
    raise TimeoutError(f"{what or 'condition'} not met within {timeout_s:.0f}s")


@dataclass
class PredictLoad:
    """``clients`` threads posting ``body`` to ``url/predict`` until stopped (max_seconds)."""

    url: str
    body: bytes
    clients: int = 2
    max_seconds: float = 600.0
    pause_s: float = 0.01  # between requests of one client: a bounded load
    statuses: Counter[int] = field(default_factory=Counter)
    versions: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(self.clients)]  # fmt: skip

    def _run(self) -> None:
        u = urlsplit(self.url)
        deadline = time.monotonic() + self.max_seconds
        conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=10)
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                t0 = time.perf_counter()
                try:
                    conn.request("POST", "/predict", self.body,
                                 {"content-type": "application/json"})  # fmt: skip
                    r = conn.getresponse()
                    data = json.loads(r.read())
                    status, version = r.status, data.get("model_version")
                except (OSError, ValueError, http.client.HTTPException) as exc:
                    conn.close()
                    status, version = -1, None
                    with self._lock:
                        self.errors.append(repr(exc)[:200])
                ms = (time.perf_counter() - t0) * 1000.0
                with self._lock:
                    self.statuses[status] += 1
                    if version is not None:
                        self.versions[int(version)] += 1
                    self.latencies_ms.append(ms)
                self._stop.wait(self.pause_s)
        finally:
            conn.close()

    def start(self) -> PredictLoad:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> dict[str, Any]:
        """Stop the clients; what they saw."""
        self._stop.set()
        for t in self._threads:
            t.join(30)
        lat = sorted(self.latencies_ms)

        def q(p: float) -> float:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else float("nan")

        ok = self.statuses.get(200, 0)
        return {
            "requests": sum(self.statuses.values()), "ok": ok,
            "errors": sum(self.statuses.values()) - ok,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "versions": {str(k): v for k, v in sorted(self.versions.items())},
            "p50_ms": q(0.5), "p99_ms": q(0.99), "first_errors": self.errors[:5],
        }  # fmt: skip
