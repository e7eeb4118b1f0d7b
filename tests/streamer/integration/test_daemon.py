"""The ``lt4rec streamer`` / ``lt4rec stream replay`` commands as processes: signals, metrics
endpoint, progress line, clear CLI errors."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest
from kafka import KafkaAdminClient

from tests.streamer.integration.streamer_it_support import (
    LABEL_COLS,
    archive_frame,
    expected_labels,
    spawn_joiner,
    wait_progress,
)

LT4REC = [sys.executable, "-m", "lt4rec_cli.main"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metric(port: int, name: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(name))


@pytest.mark.kafka
@pytest.mark.slow
def test_sigterm_drains_and_a_restart_completes(stream_env, sim_dir, children, tmp_path):
    port = _free_port()
    env = stream_env(
        kafka={"max_poll_records": 250}, metrics={"port": port, "progress_interval_s": 0.2}
    )
    t = env.cfg.topics
    sets = [
        f"--set=topics.{k}={getattr(t, k)}"
        for k in ("impressions", "clicks", "conversions", "examples", "dlq")
    ]
    out = subprocess.run(
        [
            *LT4REC,
            "stream",
            "replay",
            "--data",
            str(sim_dir),
            "--bootstrap",
            env.cfg.kafka.bootstrap,
            *sets,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "replayed" in out.stdout and "events/s" in out.stdout

    log = tmp_path / "joiner.log"
    proc = spawn_joiner(env, idle_s=4.0, log=log)
    children.append(proc)
    admin = KafkaAdminClient(bootstrap_servers=env.cfg.kafka.bootstrap)
    try:
        wait_progress(admin, env.cfg.kafka.group_id, 0, proc)
    finally:
        admin.close()
    assert _metric(port, "lt4rec_joiner_events_in_total") > 0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    text = log.read_text()
    assert "SIGTERM received, draining" in text and "joiner: partitions=" in text

    resumed = spawn_joiner(env, idle_s=4.0, log=log)  # same store: resumes where it stopped
    children.append(resumed)
    assert resumed.wait(timeout=120) == 0
    pd.testing.assert_frame_equal(
        archive_frame(env.archive, LABEL_COLS),
        expected_labels(sim_dir, env.cfg.joiner),
        check_dtype=False,
    )


def test_cli_errors_are_messages_not_tracebacks(tmp_path):
    bad = subprocess.run(
        [*LT4REC, "streamer", "--set", "kafka.bogus=1"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode != 0
    assert "kafka.bogus" in bad.stderr and "Traceback" not in bad.stderr
    missing = subprocess.run(
        [*LT4REC, "stream", "replay", "--data", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert "is not a directory" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "d").mkdir()
    empty = subprocess.run(
        [*LT4REC, "stream", "replay", "--data", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert empty.returncode == 2 and "spec.json" in empty.stderr
    down = subprocess.run(
        [
            *LT4REC,
            "streamer",
            "--set",
            "kafka.bootstrap=127.0.0.1:1",
            "--set",
            "kafka.bootstrap_timeout_ms=1500",
            "--set",
            f"store.url=sqlite:///{tmp_path / 's.db'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert down.returncode != 0 and "Traceback" not in down.stderr
    assert "127.0.0.1:1" in down.stderr
    store_down = subprocess.run(
        [*LT4REC, "streamer", "--set", "store.url=postgresql+psycopg://u:s3cret@127.0.0.1:1/db"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert store_down.returncode == 2 and "Traceback" not in store_down.stderr
    assert "state store" in store_down.stderr and "s3cret" not in store_down.stderr


@pytest.mark.kafka
def test_metrics_port_in_use_is_a_clear_error(stream_env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = stream_env(metrics={"port": port})
        r = subprocess.run([*LT4REC, "streamer", "--config", str(env.path)], capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert r.returncode == 1 and "Address already in use" in r.stderr
    assert "Traceback" not in r.stderr


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr and "[SQL" not in stderr
    return lines[0]


@pytest.mark.kafka
def test_a_read_only_store_is_named_as_the_cause_not_kafka(stream_env, tmp_path):
    from streamer.store import make_store

    env = stream_env()
    make_store(env.cfg.store.url).close()  # tables exist: the store opens, writes fail
    ro = f"sqlite:///file:{env.cfg.store.url.removeprefix('sqlite:///')}?mode=ro&uri=true"
    r = subprocess.run([*LT4REC, "streamer", "--config", str(env.path), "--set",
                        f"store.url={ro!r}", "--exit-when-idle", "5"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    line = _one_line(r.stderr)
    assert r.returncode == 1
    assert "state store" in line and "attempt to write a readonly database" in line
    assert "Kafka" not in line and "broker" not in line


@pytest.mark.postgres
def test_a_database_that_never_answers_fails_fast_with_one_line():
    from tests.streamer.store.tcp_proxy import silent_server

    with silent_server() as port:
        t0 = time.monotonic()
        r = subprocess.run([*LT4REC, "streamer", "--set",
                            f"store.url=postgresql+psycopg://u:s3cret@127.0.0.1:{port}/db",
                            "--set", "store.connect_timeout_s=2"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
        took = time.monotonic() - t0
    line = _one_line(r.stderr)
    assert r.returncode == 2 and took < 30, (r.returncode, took)
    assert "state store" in line and "timeout" in line and "s3cret" not in line
