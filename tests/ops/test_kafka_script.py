"""ops/kafka/kafka.sh on a spare port: idempotent start, 4.x status, clean stop.

Never touches the shared broker on 9092: each test gets free ports and a data dir in
``tmp_path`` (the jar cache in ``LT4REC_CACHE`` is shared, so nothing is downloaded twice).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "ops" / "kafka" / "kafka.sh"
PROBE = REPO / "ops" / "kafka" / "probe.py"

Run = Callable[..., subprocess.CompletedProcess[str]]


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free right now (all bound at once, so never the same twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def broker_pids(props: Path) -> list[int]:
    """Pids of the java brokers started with this server.properties."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" in cmd and str(props).encode() in cmd:
            pids.append(int(entry.name))
    return pids


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def kafka_sh(tmp_path: Path) -> Iterator[tuple[Run, Path, int]]:
    """Factory running kafka.sh against a private broker; always stopped afterwards."""
    port, cport = free_ports(2)
    data = tmp_path / "kafka-data"
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(cport),
        "KAFKA_DATA_DIR": str(data),
    }

    def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    yield run, data, port
    run("stop")


@pytest.mark.kafka
@pytest.mark.slow
def test_start_twice_status_stop(kafka_sh: tuple[Run, Path, int]) -> None:
    run, data, port = kafka_sh
    props = data / "server.properties"

    # Two starts racing: one launches the broker, the other waits for it (file lock).
    with ThreadPoolExecutor(2) as pool:
        pair = list(pool.map(lambda _: run("start"), range(2)))
    assert [r.returncode for r in pair] == [0, 0], [r.stderr for r in pair]
    outs = " ".join(r.stdout + r.stderr for r in pair)
    assert len(re.findall(rf"ready on 127\.0\.0\.1:{port} \(pid \d+\) after [\d.]+s", outs)) == 1
    assert outs.count("already running") == 1
    pid = int((data / "kafka.pid").read_text())
    assert broker_pids(props) == [pid]
    text = props.read_text()
    for line in (
        "auto.create.topics.enable=false",
        "group.initial.rebalance.delay.ms=0",
        "offsets.topic.replication.factor=1",
        "num.partitions=1",
        "process.roles=broker,controller",
    ):
        assert line in text.splitlines()

    second = run("start")  # and once more, sequentially
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stderr
    assert broker_pids(props) == [pid], "second start must not launch another broker"

    status = run("status")
    assert status.returncode == 0, status.stderr
    assert re.search(rf"running: Apache Kafka 4\.\d+\.\d+ pid {pid} port {port}", status.stdout)
    assert "ready" in status.stdout

    probe = subprocess.run(
        [sys.executable, str(PROBE), "127.0.0.1", str(port)], capture_output=True, text=True
    )
    assert probe.returncode == 0 and probe.stdout.startswith("ready"), probe

    stop = run("stop")
    assert stop.returncode == 0, stop.stderr
    assert "stopped" in stop.stdout
    assert broker_pids(props) == []
    assert not (data / "kafka.pid").exists()
    assert not listening(port)

    after = run("status")
    assert after.returncode == 3
    assert after.stdout.startswith("not running")
    again = run("stop")
    assert again.returncode == 0 and "not running" in again.stdout


def test_probe_reports_a_closed_port() -> None:
    (port,) = free_ports(1)
    t0 = time.monotonic()
    res = subprocess.run(
        [sys.executable, str(PROBE), "127.0.0.1", str(port)], capture_output=True, text=True
    )
    assert res.returncode == 1
    assert res.stderr.startswith("not ready:")
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAFKA_VERSION": "3.9.0"}, "KAFKA_VERSION must be 4.x"),
        ({"KAFKA_PORT": "abc"}, "must be numbers"),
        ({"KAFKA_PORT": "19555", "KAFKA_CONTROLLER_PORT": "19555"}, "must differ"),
    ],
)
def test_bad_environment_is_rejected(env: dict[str, str], message: str) -> None:
    res = subprocess.run(
        ["bash", str(SCRIPT), "status"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 1
    assert message in res.stderr


def test_unknown_command_prints_usage() -> None:
    res = subprocess.run(["bash", str(SCRIPT), "restart"], capture_output=True, text=True)
    assert res.returncode == 2
    assert "usage:" in res.stderr
