"""Notice publisher and follower on the real broker: delivery, order, re-sends, malformed
records, the registry's version in service, a broker that is down."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from kafka import KafkaProducer

from checkpoints import Notice, publish
from checkpoints.publish import pending_notices
from lt4rec.config import KafkaConfig
from streamer.kafka.admin import (
    TopicLayoutError,
    admin_client,
    ensure_models_topic,
    partition_counts,
)
from streamer.notices import NoticeError, NoticeFollower, NoticePublisher
from tests.streamer.models_support import ServingEnv, save_version, serving_config

pytestmark = pytest.mark.kafka


@pytest.fixture
def env(tmp_path, kafka_bootstrap, unique_name) -> Callable[..., ServingEnv]:
    def make(db_url: str | None = None) -> ServingEnv:
        return serving_config(tmp_path / "env", kafka_bootstrap, unique_name("models"), db_url)

    return make


@pytest.fixture
def parts(env) -> Iterator[tuple]:
    """(env, registry, publisher, two saved versions) on SQLite."""
    e = env()
    reg = e.registry()
    pub = NoticePublisher(e.cfg.kafka, e.cfg.topics, reg)
    versions = [save_version(reg, e.cfg, s) for s in (1, 2)]
    yield e, reg, pub, versions
    pub.close()
    reg.close()


def follower(e: ServingEnv, reg=None, **kw) -> NoticeFollower:
    return NoticeFollower(e.cfg.kafka, e.cfg.topics, reg, **kw)


def drain(f: NoticeFollower, want: int, timeout_s: float = 20.0) -> list[Notice]:
    """Poll until ``want`` notices came (or the timeout), then once more for extras."""
    got: list[Notice] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        got += f.poll(0.5)
    got += f.poll(0.5)
    return got


def test_published_notices_reach_a_follower_in_order_and_are_marked_sent(parts):
    e, reg, pub, (v1, v2) = parts
    n1 = pub.publish(v1.version, "first")
    n2 = pub.publish(v2.version, "second")
    back = pub.rollback()
    assert pending_notices(reg) == []
    assert all(p.notified for p in reg.publications())
    f = follower(e, start="beginning")
    try:
        got = drain(f, 3)
    finally:
        f.close()
    assert got == [n1, n2, back]
    assert back.action == "rollback" and back.version == v1.version


def test_the_topic_has_one_compacted_partition_and_more_are_refused(env, unique_name):
    e = env()
    ensure_models_topic(e.cfg.kafka, e.cfg.topics)
    ensure_models_topic(e.cfg.kafka, e.cfg.topics)  # idempotent
    admin = admin_client(e.cfg.kafka)
    try:
        assert partition_counts(admin, [e.cfg.topics.models]) == {e.cfg.topics.models: 1}
        other = unique_name("models2")
        admin.create_topics({other: {"num_partitions": 2, "replication_factor": 1}})
        admin.wait_for_topics([other])
    finally:
        admin.close()
    from dataclasses import replace

    with pytest.raises(TopicLayoutError, match="exactly one"):
        ensure_models_topic(e.cfg.kafka, replace(e.cfg.topics, models=other))


def test_a_new_follower_starts_from_the_registry_then_the_newest_notice(parts):
    e, reg, pub, (v1, v2) = parts
    pub.publish(v1.version)
    n2 = publish(reg, v2.version)  # in service, but no notice was ever sent
    f = follower(e, reg)
    try:
        first = f.poll(0.5)
        assert first == [n2]  # the registry: a new replica serves the version in service
        pub.start()  # the publisher re-sends n2: not newer, so nothing to apply
        assert drain(f, 0, 2) == []
        assert f.stats.stale >= 1
        n3 = pub.rollback()
        assert drain(f, 1) == [n3]
    finally:
        f.close()


def test_newest_start_skips_history_without_a_registry(parts):
    e, _, pub, (v1, v2) = parts
    pub.publish(v1.version)
    last = pub.publish(v2.version)
    f = follower(e, start="newest")
    try:
        assert drain(f, 1) == [last]
    finally:
        f.close()


def test_resent_and_older_notices_are_applied_once(parts):
    e, _, pub, (v1, v2) = parts
    n1 = pub.publish(v1.version)
    n2 = pub.publish(v2.version)
    pub.send(n2)  # duplicate (a publisher that died before marking it sent)
    pub.send(n1)  # an older publication arriving late
    f = follower(e, start="beginning")
    try:
        assert drain(f, 2) == [n1, n2]
        assert f.stats.stale == 2 and f.stats.yielded == 2
    finally:
        f.close()


def test_malformed_notices_are_counted_and_skipped(parts, kafka_bootstrap):
    e, _, pub, (v1, _) = parts
    ensure_models_topic(e.cfg.kafka, e.cfg.topics)
    good = pub.publish(v1.version)
    bad_values = [
        b"\xff\xfe not json",
        b"[1, 2]",
        b'{"publication": 1}',
        good.to_json().replace(b'"version": 1', b'"version": "1"'),
        good.to_json().replace(b'"publication": 1', b'"publication": true'),
        good.to_json().replace(b'"action": "publish"', b'"action": "delete"'),
        None,
    ]
    prod = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for value in bad_values:
        prod.send(e.cfg.topics.models, key=b"sparse_sharing", value=value, partition=0)
    prod.flush()
    prod.close()
    later = pub.rollback(v1.version)
    seen: list[str] = []
    f = follower(e, start="beginning", on_malformed=lambda _raw, why: seen.append(why))
    try:
        got = drain(f, 2)
    finally:
        f.close()
    assert got == [good, later]
    assert f.stats.malformed == len(bad_values) == len(seen)
    assert all("malformed model notice" in why for why in seen)


def test_start_resends_the_notice_a_killed_publisher_left_pending(parts):
    e, reg, pub, (v1, _) = parts
    n1 = publish(reg, v1.version)  # committed; the notice never went out
    assert pending_notices(reg) == [n1]
    assert pub.start() == [n1]
    assert pending_notices(reg) == []
    assert pub.start() == []
    f = follower(e, start="beginning")
    try:
        assert drain(f, 1) == [n1]
    finally:
        f.close()


def test_a_broker_that_is_down_keeps_the_publication_pending(tmp_path, parts):
    e, reg, _, (v1, _) = parts
    down = KafkaConfig(bootstrap="127.0.0.1:1", bootstrap_timeout_ms=1000)
    pub = NoticePublisher(down, e.cfg.topics, reg, timeout_s=2)
    with pytest.raises(NoticeError, match="stays pending"):
        pub.publish(v1.version)
    pub.close()
    assert reg.current().version.version == v1.version  # the publication holds
    assert [n.version for n in pending_notices(reg)] == [v1.version]
    f = NoticeFollower(down, e.cfg.topics, reg)  # the registry still tells the version
    try:
        t0 = time.monotonic()
        got = f.poll(0.2)
        assert [n.version for n in got] == [v1.version]
        assert f.poll(0.2) == [] and time.monotonic() - t0 < 10
        assert f.stats.errors >= 1
    finally:
        f.close()


def test_the_registry_is_polled_for_publications_without_notices(parts):
    e, reg, _, (v1, v2) = parts
    publish(reg, v1.version)
    f = follower(e, reg, registry_poll_s=0.5)
    try:
        assert [n.version for n in f.poll(0.2)] == [v1.version]
        n2 = publish(reg, v2.version)  # no notice sent
        assert drain(f, 1, timeout_s=10) == [n2]
    finally:
        f.close()


def test_a_publisher_with_an_onnx_repo_exports_what_it_announces(parts, tmp_path):
    e, reg, _, (v1, v2) = parts
    repo = tmp_path / "onnx"
    with NoticePublisher(e.cfg.kafka, e.cfg.topics, reg, onnx_repo=str(repo)) as pub:
        pub.publish(v1.version)
        corrupt_path = reg.get(v2.version).path
        n2 = publish(reg, v2.version)
        with open(corrupt_path, "r+b") as f:  # damaged after publishing: export fails...
            f.seek(100)
            f.write(b"\x00" * 8)
        pub.send(n2)  # ...but the notice is sent and marked all the same
    assert (repo / "sparse_sharing" / str(v1.version) / "model.onnx").is_file()
    assert not (repo / "sparse_sharing" / str(v2.version)).exists()
    assert pending_notices(reg) == []
