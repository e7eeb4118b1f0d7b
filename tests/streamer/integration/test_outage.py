"""A broker outage longer than ``--exit-when-idle`` is not the end of the stream.

A private single-node broker (``ops/kafka/kafka.sh`` on spare ports with its own data dir in
``tmp_path``; the shared broker on 9092 is never touched) is killed with SIGKILL once the
joiner has consumed the first part of the stream and polls for more (the moment the old
daemon took for the end of the stream: it closed every window and exited 0), kept down for
three idle limits, then restarted on the same port and data dir; the rest of the stream
arrives after it. The joiner must neither exit nor close a window while the broker is away,
and its archive must be identical to an uninterrupted run over the same topics.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from kafka import KafkaAdminClient

from streamer.kafka.admin import ensure_topics
from streamer.replay import replay
from tests.ops.test_kafka_script import SCRIPT, free_ports, listening
from tests.streamer.integration.streamer_it_support import (
    LABEL_COLS,
    archive_frame,
    expected_labels,
    run_inprocess,
    segment,
    spawn_joiner,
    wait_progress,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
IDLE_S = 4.0


@dataclass
class Broker:
    bootstrap: str
    data: Path
    env: dict[str, str]

    def sh(self, cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(SCRIPT), cmd], env=self.env, capture_output=True,
                              text=True, timeout=180, stdin=subprocess.DEVNULL)  # fmt: skip

    def start(self) -> None:
        r = self.sh("start")
        assert r.returncode == 0, r.stderr

    def kill_9(self) -> None:
        """SIGKILL the broker process this fixture started (by its pid file), wait for it."""
        pid = int((self.data / "kafka.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # our own grandchild is reaped by init (setsid)
        assert not listening(int(self.bootstrap.rsplit(":", 1)[1]))


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of our own on free ports, stopped (by its pid file) at teardown."""
    port, cport = free_ports(2)
    data = tmp_path / "kafka-data"
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(cport),
           "KAFKA_DATA_DIR": str(data), "KAFKA_HEAP_OPTS": "-Xms64m -Xmx384m"}  # fmt: skip
    broker = Broker(f"127.0.0.1:{port}", data, env)
    broker.start()
    try:
        yield broker
    finally:
        broker.sh("stop")


def test_broker_kill_9_longer_than_idle_then_restart_gives_the_uninterrupted_archive(
    private_broker, stream_env, sim_dir, sim_events, children, tmp_path
):
    broker = private_broker
    env = stream_env(kafka={"bootstrap": broker.bootstrap}, archive={"flush_rows": 300})
    cfg = env.cfg
    ensure_topics(cfg.kafka, cfg.topics)
    total = len(sim_events)
    first = int(total * 0.6)
    replay(segment(sim_events, 0, first), cfg.kafka, cfg.topics)

    log = tmp_path / "joiner.log"
    proc = spawn_joiner(env, idle_s=IDLE_S, log=log)
    children.append(proc)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        seen = wait_progress(admin, cfg.kafka.group_id, first - 1, proc)
    finally:
        admin.close()
    assert seen == first and proc.poll() is None, (seen, log.read_text()[-4000:])
    broker.kill_9()  # the joiner is idle-polling: all of the first part is consumed
    time.sleep(3 * IDLE_S)  # three idle limits without a broker
    assert proc.poll() is None, f"the joiner took the outage for the end: {log.read_text()}"
    broker.start()  # same port, same data dir
    replay(segment(sim_events, first, total), cfg.kafka, cfg.topics)  # within one idle limit
    assert proc.wait(timeout=240) == 0, log.read_text()[-4000:]
    text = log.read_text()
    assert "does not answer" in text and "answers again" in text, text[-4000:]

    ref = env.variant("ref")
    run_inprocess(ref)
    got, want = archive_frame(env.archive), archive_frame(ref.archive)
    truth = expected_labels(sim_dir, cfg.joiner)
    assert len(got) == len(want) == len(truth)
    pd.testing.assert_frame_equal(got, want)
    pd.testing.assert_frame_equal(got[LABEL_COLS], truth, check_dtype=False)
