"""Crash safety on the real broker: ``kill -9`` of joiner processes never changes the archive.

The reference is an uninterrupted in-process run over the same topics (its own group, store
and archive); the crashed deployment must end with an identical archive table.
"""

from __future__ import annotations

import random
import time

import pandas as pd
import pytest
from kafka import KafkaAdminClient

from streamer.kafka.admin import ensure_topics
from streamer.replay import replay
from tests.streamer.integration.streamer_it_support import (
    LABEL_COLS,
    archive_frame,
    expected_labels,
    group_size,
    run_inprocess,
    spawn_joiner,
    wait_progress,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def crash_env(stream_env, sim_events):
    """Topics filled by a replay; small polls so that a run has many commit points."""
    env = stream_env(kafka={"max_poll_records": 150}, archive={"flush_rows": 300})
    ensure_topics(env.cfg.kafka, env.cfg.topics)
    replay(sim_events, env.cfg.kafka, env.cfg.topics)
    return env


def _same_archive(env, ref, sim_dir) -> None:
    got, want = archive_frame(env.archive), archive_frame(ref.archive)
    assert len(got) == len(want) == len(expected_labels(sim_dir, env.cfg.joiner))
    pd.testing.assert_frame_equal(got, want)
    pd.testing.assert_frame_equal(
        got[LABEL_COLS], expected_labels(sim_dir, env.cfg.joiner), check_dtype=False
    )


def test_kill_9_and_restart_gives_the_uninterrupted_archive(
    crash_env, sim_dir, sim_events, children, tmp_path
):
    env = crash_env
    ref = env.variant("ref")
    run_inprocess(ref)

    rng = random.Random(42)
    log = tmp_path / "joiner.log"
    admin = KafkaAdminClient(bootstrap_servers=env.cfg.kafka.bootstrap)
    group = env.cfg.kafka.group_id
    total = len(sim_events)
    # kill points: 5 random fractions of the stream, each reached by a fresh incarnation
    targets = sorted(int(total * rng.uniform(0.08, 0.7)) for _ in range(5))
    kills, seen, at_kill = 0, 0, []
    try:
        for target in targets:
            proc = spawn_joiner(env, idle_s=4.0, log=log)
            children.append(proc)
            seen = wait_progress(admin, group, max(seen, target - 1), proc)
            time.sleep(rng.uniform(0.0, 0.15))  # anywhere within the next batch cycle
            assert proc.poll() is None, f"joiner finished before kill {kills + 1}: {log}"
            proc.kill()  # SIGKILL
            proc.wait(timeout=10)
            kills += 1
            at_kill.append(seen)
    finally:
        admin.close()
    assert kills == 5 and at_kill[-1] < total, (at_kill, total)  # all during processing
    final = spawn_joiner(env, idle_s=4.0, log=log)
    children.append(final)
    assert final.wait(timeout=180) == 0, log.read_text()[-3000:]
    _same_archive(env, ref, sim_dir)


def test_two_joiners_one_killed_the_other_takes_over(crash_env, sim_dir, children, tmp_path):
    env = crash_env
    ref = env.variant("ref")
    run_inprocess(ref)

    log = tmp_path / "joiners.log"
    admin = KafkaAdminClient(bootstrap_servers=env.cfg.kafka.bootstrap)
    # idle limit > session timeout: the survivor must still be there to take over
    a = spawn_joiner(env, idle_s=15.0, log=log)
    b = spawn_joiner(env, idle_s=15.0, log=log)
    children.extend([a, b])
    try:
        deadline = time.monotonic() + 60
        while group_size(admin, env.cfg.kafka.group_id) < 2:
            assert time.monotonic() < deadline, "the two joiners never formed a group"
            time.sleep(0.2)
        wait_progress(admin, env.cfg.kafka.group_id, 0, a)
    finally:
        admin.close()
    time.sleep(random.Random(7).uniform(0.2, 1.0))
    assert a.poll() is None, "joiner A finished before it could be killed"
    a.kill()
    a.wait(timeout=10)
    assert b.wait(timeout=180) == 0, log.read_text()[-3000:]
    _same_archive(env, ref, sim_dir)
