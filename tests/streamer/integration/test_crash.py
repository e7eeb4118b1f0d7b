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
    example_origins,
    expected_labels,
    group_size,
    read_topic,
    run_inprocess,
    segment,
    spawn_joiner,
    wait_progress,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _same_archive(env, ref, sim_dir) -> None:
    got, want = archive_frame(env.archive), archive_frame(ref.archive)
    assert len(got) == len(want) == len(expected_labels(sim_dir, env.cfg.joiner))
    pd.testing.assert_frame_equal(got, want)
    pd.testing.assert_frame_equal(
        got[LABEL_COLS], expected_labels(sim_dir, env.cfg.joiner), check_dtype=False
    )


def test_kill_9_during_a_replay_and_restart_gives_the_uninterrupted_archive(
    stream_env, sim_dir, sim_events, children, tmp_path
):
    """Five ``kill -9`` at random points while the replay is still producing.

    The replay is produced in six segments; incarnation k is killed at a random point of
    segment k, before segment k + 1 exists, so every kill lands mid-stream whatever the
    joiner's speed. The reference run reads the same topics once they are complete.
    """
    env = stream_env(kafka={"max_poll_records": 150}, archive={"flush_rows": 300})
    ensure_topics(env.cfg.kafka, env.cfg.topics)
    ref = env.variant("ref")
    rng = random.Random(42)
    log = tmp_path / "joiner.log"
    admin = KafkaAdminClient(bootstrap_servers=env.cfg.kafka.bootstrap)
    group = env.cfg.kafka.group_id
    total = len(sim_events)
    bounds = [round(total * k / 6) for k in range(7)]
    at_kill = []
    try:
        for k in range(5):
            replay(segment(sim_events, bounds[k], bounds[k + 1]), env.cfg.kafka, env.cfg.topics)
            # long idle limit: a killed incarnation must never exit (and flush) by itself
            proc = spawn_joiner(env, idle_s=60.0, log=log)
            children.append(proc)
            target = bounds[k] + int(rng.uniform(0.1, 0.9) * (bounds[k + 1] - bounds[k]))
            seen = wait_progress(admin, group, target, proc)
            time.sleep(rng.uniform(0.0, 0.15))  # anywhere within the next batch cycle
            assert proc.poll() is None, f"joiner exited before kill {k + 1}: {log}"
            proc.kill()  # SIGKILL
            proc.wait(timeout=10)
            at_kill.append(seen)
    finally:
        admin.close()
    assert len(at_kill) == 5 and all(a < total for a in at_kill), (at_kill, total)
    replay(segment(sim_events, bounds[5], bounds[6]), env.cfg.kafka, env.cfg.topics)
    final = spawn_joiner(env, idle_s=4.0, log=log)
    children.append(final)
    assert final.wait(timeout=180) == 0, log.read_text()[-3000:]
    # re-delivered examples repeat their origin: one (partition, seq) per example key
    # (read before the reference run, which produces to the same examples topic)
    origins = example_origins(read_topic(env.cfg.kafka.bootstrap, env.cfg.topics.examples))
    assert len(origins) == len(expected_labels(sim_dir, env.cfg.joiner))
    assert all(len(o) == 1 for o in origins.values())
    run_inprocess(ref)
    _same_archive(env, ref, sim_dir)


def test_two_joiners_one_killed_the_other_takes_over(
    stream_env, sim_dir, sim_events, children, tmp_path
):
    """Half the replay, two joiners, kill one; the rest of the replay then reaches only B."""
    env = stream_env(kafka={"max_poll_records": 150}, archive={"flush_rows": 300})
    ensure_topics(env.cfg.kafka, env.cfg.topics)
    ref = env.variant("ref")
    half = len(sim_events) // 2
    replay(segment(sim_events, 0, half), env.cfg.kafka, env.cfg.topics)

    log = tmp_path / "joiners.log"
    admin = KafkaAdminClient(bootstrap_servers=env.cfg.kafka.bootstrap)
    group = env.cfg.kafka.group_id
    # idle limit > session timeout: the survivor must still be there to take over
    a = spawn_joiner(env, idle_s=15.0, log=log)
    b = spawn_joiner(env, idle_s=15.0, log=log)
    children.extend([a, b])
    try:
        deadline = time.monotonic() + 60
        while group_size(admin, group) < 2:
            assert time.monotonic() < deadline, "the two joiners never formed a group"
            time.sleep(0.2)
        wait_progress(admin, group, 0, a)
        time.sleep(random.Random(7).uniform(0.0, 0.3))
        assert a.poll() is None, "joiner A exited before it could be killed"
        a.kill()
        a.wait(timeout=10)
        replay(segment(sim_events, half, len(sim_events)), env.cfg.kafka, env.cfg.topics)
        assert b.wait(timeout=180) == 0, log.read_text()[-3000:]
        assert group_size(admin, group) == 0
    finally:
        admin.close()
    run_inprocess(ref)
    _same_archive(env, ref, sim_dir)
