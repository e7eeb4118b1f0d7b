"""The main job's daemons as real processes: spawned like systemd would, stopped with SIGTERM.

Each daemon is ``python -m lt4rec_cli.main <command> --config <file> [args]`` with its stdout
and stderr in ``<logs>/<name>.log``, in its own process group (a Ctrl-C in the terminal reaches
the main job only, which then stops the daemons in order: each one drains, checkpoints and
exits on SIGTERM; one that does not within its grace period is killed).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


class DaemonDied(RuntimeError):
    """A daemon of the main job exited while it should be running."""


_INTERRUPTED = threading.Event()


def _on_signal(signum: int, _frame: object) -> None:
    if _INTERRUPTED.is_set():  # a second Ctrl-C must not cut the daemons' shutdown short
        return
    _INTERRUPTED.set()
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install_interrupt() -> Callable[[], None]:
    """SIGINT (Ctrl-C) and SIGTERM stop the main job; returns the undo.

    The handler raises KeyboardInterrupt at once, but Python ignores an exception raised while
    a garbage-collector or weakref callback runs ("Exception ignored in ..."), so the request
    is also remembered and :func:`raise_if_interrupted` raises it again at the job's next check
    point (every wait loop, every daemon check)."""
    _INTERRUPTED.clear()
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def undo() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return undo


def raise_if_interrupted() -> None:
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt("interrupted")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now (for a daemon's HTTP endpoint)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class Daemons:
    """Starts, watches and stops the main job's processes."""

    def __init__(self, config: Path, logs: Path) -> None:
        self.config, self.logs = config, logs
        logs.mkdir(parents=True, exist_ok=True)
        self.running: dict[str, Daemon] = {}

    def start(self, name: str, command: str, *args: str) -> Daemon:
        cmd = [sys.executable, "-m", "lt4rec_cli.main", command, "--config", str(self.config),
               *args]  # fmt: skip
        path = self.logs / f"{name}.log"
        out = path.open("ab")
        try:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        finally:
            out.close()
        d = Daemon(name, proc, path)
        self.running[name] = d
        log.info("started %s (pid %d): %s", name, proc.pid, " ".join(cmd[2:]))
        return d

    def check(self) -> None:
        """Raise :class:`DaemonDied` when a daemon exited (with the tail of its log)."""
        raise_if_interrupted()
        for d in self.running.values():
            rc = d.proc.poll()
            if rc is not None:
                raise DaemonDied(f"{d.name} exited with status {rc}; its log ends:\n{d.tail()}")

    def wait(self, name: str, timeout_s: float) -> int:
        """Wait for a daemon that exits by itself; its exit status."""
        d = self.running[name]
        rc = d.proc.wait(timeout=timeout_s)
        del self.running[name]
        return rc

    def stop(self, name: str, grace_s: float = 60.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace_s``; the exit status."""
        d = self.running.pop(name, None)
        if d is None:
            return None
        if d.proc.poll() is None:
            d.proc.send_signal(signal.SIGTERM)
            try:
                d.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.error("%s did not stop within %.0fs: killed", d.name, grace_s)
                d.proc.kill()
                d.proc.wait(timeout=10)
        return d.proc.returncode

    def stop_all(self, grace_s: float = 60.0) -> dict[str, int | None]:
        """Stop every daemon still running, newest first."""
        return {name: self.stop(name, grace_s) for name in reversed(list(self.running))}
