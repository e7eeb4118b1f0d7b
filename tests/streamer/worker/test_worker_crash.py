# mypy: allow-untyped-defs
"""``kill -9`` of the worker at random points never loses or double-trains an example.

A single-partition examples topic holding duplicated examples (joiner re-deliveries) is
consumed by ``lt4rec worker`` processes in deterministic mode (CPU deterministic algorithms,
one thread, batches cut by offset). Five incarnations are killed with SIGKILL at random points,
each restarted from the newest checkpoint; the sixth runs to the end. Its final weights must
equal those of one uninterrupted run over the same topic within 1e-6, and its examples-trained
counter must equal the number of distinct examples.
"""

from __future__ import annotations

import random
import time

import pytest
import torch
from kafka import KafkaAdminClient

from checkpoints import Registry, load_newest_good
from streamer.kafka.admin import ensure_topics
from tests.streamer.integration.streamer_it_support import wait_progress
from tests.streamer.worker.worker_support import produce, spawn_worker, worker_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

DETERMINISTIC = {
    "batch_cut": "offset", "deterministic": True, "batch_size": 64,
    "checkpoint_examples": 64, "checkpoint_seconds": 1.0,
}  # fmt: skip


def _final(env):
    reg = Registry(env.cfg.registry)
    try:
        found = load_newest_good(reg, ["online"])
        assert found is not None
        return found[0], found[1]
    finally:
        reg.close()


def test_kill_9_at_random_points_gives_the_uninterrupted_weights(
    stream_env, examples, base_ckpt, children, tmp_path
):
    env = stream_env(topics={"partitions": 1}, kafka={"max_poll_records": 100})
    ensure_topics(env.cfg.kafka, env.cfg.topics)
    # static membership: each restart takes the partition back without waiting for the
    # killed member's session to expire
    crash = worker_env(env, "crash", base_ckpt, instance_id="crash-worker", **DETERMINISTIC)
    # the reference checkpoints only at the end: the weights must not depend on the cadence
    ref = worker_env(
        env,
        "ref",
        base_ckpt,
        **DETERMINISTIC | {"checkpoint_examples": 10**6, "checkpoint_seconds": 3600.0},
    )
    rows = examples[:2400]
    recs = [(r.key, r.value, r.headers(), 0) for r in rows]
    # joiner re-deliveries: blocks of already-sent examples appear again later in the topic
    stream = recs[:700] + recs[640:700] + recs[700:1500] + recs[1300:1420] + recs[1500:]
    stream = stream[:2000] + recs[1800:1815] + stream[2000:]  # stream[1999] is recs[1819]
    distinct = len(rows)
    rng = random.Random(8)
    total = len(stream)
    bounds = [round(total * k / 6) for k in range(7)]
    log = tmp_path / "worker.log"
    admin = KafkaAdminClient(bootstrap_servers=env.cfg.kafka.bootstrap)
    group = crash.cfg.worker.group_id
    at_kill = []
    try:
        for k in range(5):
            produce(
                env.cfg.kafka.bootstrap, env.cfg.topics.examples, stream[bounds[k] : bounds[k + 1]]
            )
            proc = spawn_worker(crash, idle_s=120.0, log=log)  # never exits by itself
            children.append(proc)
            target = bounds[k] + int(rng.uniform(0.2, 0.8) * (bounds[k + 1] - bounds[k]))
            seen = wait_progress(admin, group, target, proc, timeout_s=90.0)
            time.sleep(rng.uniform(0.0, 0.2))  # anywhere in the next batch / checkpoint
            assert proc.poll() is None, (
                f"worker exited before kill {k + 1}: {log.read_text()[-2000:]}"
            )
            proc.kill()  # SIGKILL
            proc.wait(timeout=10)
            at_kill.append(seen)
    finally:
        admin.close()
    assert len(at_kill) == 5 and all(a < total for a in at_kill), (at_kill, total)
    produce(env.cfg.kafka.bootstrap, env.cfg.topics.examples, stream[bounds[5] :])
    final = spawn_worker(crash, idle_s=3.0, log=log)
    children.append(final)
    assert final.wait(timeout=120) == 0, log.read_text()[-3000:]
    uninterrupted = spawn_worker(ref, idle_s=3.0, log=log)
    children.append(uninterrupted)
    assert uninterrupted.wait(timeout=120) == 0, log.read_text()[-3000:]

    info_c, got = _final(crash)
    info_r, want = _final(ref)
    counters = got.extra["stream"]["counters"]
    assert counters["examples"] == distinct
    assert counters["duplicates"] == total - distinct
    assert counters == want.extra["stream"]["counters"]
    assert got.extra["stream"]["offsets"] == want.extra["stream"]["offsets"] == {"0": total}
    assert info_c.version > info_r.version and info_r.parent is None  # one version vs a lineage
    worst = max(float((got.state_dict[k] - v).abs().max()) for k, v in want.state_dict.items())
    assert worst <= 1e-6, f"weights differ by {worst}"
    assert got.optimizer is not None and want.optimizer is not None
    for k, v in want.optimizer.items():
        assert torch.allclose(got.optimizer[k], v, atol=1e-6, rtol=0), k
