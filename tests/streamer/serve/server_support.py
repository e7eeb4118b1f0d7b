"""Test support: a real ``lt4rec serve`` process on 127.0.0.1 and a bounded request load."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[3]
LISTENING = re.compile(r"listening on (http://[\d.]+:\d+)")


class ServerProcess:
    """``python -m lt4rec_cli.main serve --config FILE [args]``; stderr is collected."""

    def __init__(self, config: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lt4rec_cli.main", "serve", "--config", str(config), *args],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self.url: str | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            m = LISTENING.search(line)
            if m and self.url is None:
                self.url = m.group(1)

    @property
    def log(self) -> str:
        return "\n".join(self.lines[-60:])

    def wait_ready(self, timeout_s: float = 90.0) -> str:
        """Wait until ``/healthz`` answers 200 (a model is loaded); returns the base URL."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log}")
            if self.url is not None:
                try:
                    if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                        return self.url
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready after {timeout_s}s:\n{self.log}")

    def get(self, path: str) -> httpx.Response:
        assert self.url is not None
        return httpx.get(self.url + path, timeout=10)

    def wait_for(self, check: Callable[[dict[str, Any]], bool], timeout_s: float = 20.0) -> float:
        """Seconds until ``check(GET /model)`` holds (AssertionError after ``timeout_s``)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if check(self.get("/model").json()):
                return time.monotonic() - t0
            time.sleep(0.05)
        raise AssertionError(f"condition not met in {timeout_s}s:\n{self.get('/model').text}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)
        return self.proc.returncode


@dataclass
class Load:
    """Concurrent keep-alive clients posting /predict until stopped (bounded in time)."""

    url: str
    body: bytes
    clients: int = 4
    max_seconds: float = 30.0
    results: list[list[tuple[int, Any]]] = field(default_factory=list)  # per client

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self.results = [[] for _ in range(self.clients)]
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.clients)
        ]

    def _run(self, i: int) -> None:
        out = self.results[i]
        deadline = time.monotonic() + self.max_seconds
        headers = {"content-type": "application/json"}
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    r = client.post("/predict", content=self.body, headers=headers)
                    out.append((r.status_code, r.json().get("model_version")))
                except (httpx.HTTPError, ValueError) as exc:
                    out.append((-1, repr(exc)))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def count(self) -> int:
        return sum(len(r) for r in self.results)
