"""``kill -9`` of a publisher at random points of save -> publish -> notice -> mark: the
version in service is always a complete, verified one, and the next publisher start makes
the topic's newest notice the publication in service."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time

import pytest

from checkpoints import Notice, Registry, verify
from checkpoints.publish import pending_notices
from checkpoints.registry import SERVABLE
from lt4rec.config import load_app_config
from streamer.notices import NoticeFollower, NoticePublisher
from tests.streamer.models_support import save_version, serving_config

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]
ROUNDS = 2  # x 2 databases; each round kills the child after 15-30 publishes


def _publish_forever(cfg_path: str, ready) -> None:
    """Child: save a new version and publish it, again and again, until killed."""
    cfg = load_app_config(cfg_path)
    reg = Registry(cfg.registry)
    pub = NoticePublisher(cfg.kafka, cfg.topics, reg)
    pub.start()
    ready.set()
    k = 0
    while True:
        info = save_version(reg, cfg, seed=k % 3)
        pub.publish(info.version, f"loop {k}")
        k += 1


def newest_notice(cfg) -> Notice | None:
    f = NoticeFollower(cfg.kafka, cfg.topics, start="newest")
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            got = f.poll(0.5)
            if got:
                return got[-1]
        return None
    finally:
        f.close()


def test_kill_9_around_publish_never_leaves_a_broken_version(
    tmp_path, db_url, kafka_bootstrap, unique_name
):
    env = serving_config(tmp_path / "env", kafka_bootstrap, unique_name("models"), db_url)
    reg = env.registry()
    ctx = mp.get_context("spawn")
    rng = random.Random(os.getpid())
    published = 0
    try:
        first = save_version(reg, env.cfg, seed=9)
        with NoticePublisher(env.cfg.kafka, env.cfg.topics, reg) as pub:
            pub.publish(first.version)
        for _ in range(ROUNDS):
            ready = ctx.Event()
            proc = ctx.Process(target=_publish_forever, args=(str(env.path), ready))
            proc.start()
            assert ready.wait(120), "publisher child did not start"
            time.sleep(rng.uniform(0.05, 2.5))
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(30)

            current = reg.current()
            assert current is not None and current.version.status == "published"
            verify(current.version)  # complete file, both checksums hold
            for v in reg.versions(statuses=SERVABLE):
                verify(v)  # no servable version is half-written
            for p in reg.publications():
                assert p.version.status == "published"

            with NoticePublisher(env.cfg.kafka, env.cfg.topics, reg) as pub:
                pub.start()  # re-sends what the killed one left pending
            assert pending_notices(reg) == []
            assert newest_notice(env.cfg) == Notice.of(current)
            published = max(published, current.id)
        assert published > 1, "the children never published anything: test too short"
    finally:
        reg.close()
