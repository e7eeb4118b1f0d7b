# mypy: allow-untyped-defs
"""The worker on the real broker: exactly-once training, DLQ, corrupt checkpoints, status."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from typer.testing import CliRunner

from checkpoints import Registry
from lt4rec_cli.main import app
from streamer.delivery import origin_headers
from streamer.dlq import read_dlq
from streamer.kafka.admin import ensure_topics
from streamer.worker import WorkerDaemon, WorkerOptions
from tests.streamer.worker.worker_support import ExampleRow, produce, worker_env

pytestmark = [pytest.mark.kafka]


def _records(rows: list[ExampleRow], partitions: int) -> list:
    """Each example to a fixed topic partition (as the joiner's keyed producer would)."""
    return [(r.key, r.value, r.headers(), r.src % partitions) for r in rows]


def _bad(rows: list[ExampleRow]) -> list:
    """Four records the worker must dead-letter, with their expected reasons."""
    good = rows[0]
    body = json.loads(good.value)
    body["features"]["user_activity"] = "high"
    return [
        (b"bad-json", b"{nope", good.headers(), 0),
        (b"no-origin", good.value, [], 1),
        (b"policy", good.value, origin_headers(good.src, 10**9, b"fnw"), 2),
        (b"feature", json.dumps(body).encode(), origin_headers(good.src, 10**9, b"wait_full"), 3),
    ]


def _committed(cfg) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=cfg.kafka.bootstrap)
    try:
        offsets = admin.list_group_offsets(cfg.worker.group_id).get(cfg.worker.group_id, {})
    finally:
        admin.close()
    return {tp.partition: o.offset for tp, o in offsets.items() if tp.topic == cfg.topics.examples}


def test_each_example_is_trained_once_duplicates_skipped_bad_ones_dead_lettered(
    stream_env, examples, base_ckpt, tmp_path
):
    env = stream_env()
    ensure_topics(env.cfg.kafka, env.cfg.topics)
    w = worker_env(env, "w", base_ckpt)
    rows = examples[:3000]
    recs = _records(rows, 4)
    # a joiner crash re-delivers a block of examples (same keys, same origins, same partitions)
    stream = recs[:2000] + recs[1500:2000] + _bad(rows) + recs[2000:]
    produce(w.cfg.kafka.bootstrap, w.cfg.topics.examples, stream)
    summary = WorkerDaemon(w.cfg, WorkerOptions(exit_when_idle_s=3.0)).run()
    c = summary.counters
    assert c["examples"] == 3000 and c["duplicates"] == 500 and c["dead_letters"] == 4
    assert c["ctr"] == 3000 and c["cvr"] == sum(json.loads(r.value)["click"] for r in rows)
    assert summary.records == len(stream)
    dlq = {d.key: d for d in read_dlq(w.cfg.kafka.bootstrap, w.cfg.topics.dlq)}
    want = {b"bad-json": "bad_json", b"no-origin": "missing_origin", b"policy": "wrong_policy",
            b"feature": "bad_feature"}  # fmt: skip
    assert {k: d.reason for k, d in dlq.items()} == want
    assert all(d.source_topic == w.cfg.topics.examples for d in dlq.values())
    # offsets committed after the last durable checkpoint = everything consumed
    ends = {p: sum(1 for r in stream if r[3] == p) for p in range(4)}
    assert _committed(w.cfg) == ends
    reg = Registry(w.cfg.registry)
    try:
        newest = reg.latest(kinds=["online"])
        assert newest is not None and newest.version == summary.version
        assert newest.metrics["trained_examples"] == 3000
        assert 0.0 <= newest.metrics["ctr_auc"] <= 1.0 and newest.parent is not None
    finally:
        reg.close()
    # a restart finds nothing new: the checkpoint's offsets and marks hold
    again = WorkerDaemon(w.cfg, WorkerOptions(exit_when_idle_s=2.0)).run()
    assert again.counters == c and again.records == 0

    status = CliRunner().invoke(app, ["worker", "status", "--config", str(w.path), "--json"])
    assert status.exit_code == 0, status.output
    report = json.loads(status.output)
    assert report["healthy"] and report["lag"] == 0 and report["version"] == summary.version
    assert report["counters"]["examples"] == 3000
    assert {int(p): v["offset"] for p, v in report["partitions"].items()} == ends


def test_a_corrupt_newest_checkpoint_is_refused_and_the_previous_one_resumes(
    stream_env, examples, base_ckpt
):
    env = stream_env()
    ensure_topics(env.cfg.kafka, env.cfg.topics)
    w = worker_env(env, "w", base_ckpt, checkpoint_examples=400)
    recs = _records(examples[:2400], 4)
    produce(w.cfg.kafka.bootstrap, w.cfg.topics.examples, recs[:1200])
    WorkerDaemon(w.cfg, WorkerOptions(exit_when_idle_s=2.0)).run()
    reg = Registry(w.cfg.registry)
    try:
        newest, previous = reg.versions(kinds=["online"], limit=2)
        Path(newest.path).write_bytes(Path(newest.path).read_bytes()[:-64])  # truncated
        produce(w.cfg.kafka.bootstrap, w.cfg.topics.examples, recs[1200:])
        args = ["worker", "--config", str(w.path), "--exit-when-idle", "2"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert f"refused corrupt version {newest.version}" in result.output
        assert f"starting from online version {previous.version}" in result.output
        assert reg.get(newest.version).status == "corrupt"
        final = reg.latest(kinds=["online"])
        assert final is not None and final.metrics["trained_examples"] == 2400  # none lost
        assert final.metrics["trained_duplicates"] == 0  # none twice either

        # the Prometheus counter of refused versions, on a second corruption
        Path(final.path).write_bytes(b"LT4RCKPT" + b"\0" * 80)
        daemon = WorkerDaemon(w.cfg, WorkerOptions(exit_when_idle_s=1.0))
        value = daemon.metrics.registry.get_sample_value("lt4rec_worker_corrupt_checkpoints_total")
        assert value == 1.0
        assert daemon.start.source != f"online version {final.version}"
        assert daemon.run().counters["examples"] == 2400
    finally:
        reg.close()


def test_slow_training_keeps_the_group_and_bounds_the_queue(stream_env, examples, base_ckpt):
    """Steps far slower than the stream (0.25 s each, 6 s max poll interval): the consumer
    pauses, keeps polling, never loses its partitions, and the queue stays bounded."""
    env = stream_env(kafka={"max_poll_interval_ms": 6000, "max_poll_records": 200})
    ensure_topics(env.cfg.kafka, env.cfg.topics)
    w = worker_env(env, "w", base_ckpt, queue_batches=2, batch_size=100)
    produce(w.cfg.kafka.bootstrap, w.cfg.topics.examples, _records(examples[:4000], 4))
    depth: list[int] = []
    paused: list[int] = []
    holder: dict = {}

    def slow(cut, result, t) -> None:
        d = holder["d"]
        depth.append(d.trainer.depth())
        paused.append(len(d.consumer.paused()) if d.consumer is not None else 0)
        time.sleep(0.25)

    daemon = WorkerDaemon(w.cfg, WorkerOptions(exit_when_idle_s=2.0, on_trained=slow))
    holder["d"] = daemon
    handovers: list[set[int]] = []
    original = daemon._hand_over
    daemon._hand_over = lambda ps: (handovers.append(set(ps)), original(ps))[1]  # type: ignore[method-assign]
    t0 = time.monotonic()
    s = daemon.run()
    assert time.monotonic() - t0 > 10.0  # far beyond max_poll_interval_ms
    assert s.counters["examples"] == 4000
    assert handovers == [{0, 1, 2, 3}]  # only at close: never revoked or lost while training
    assert max(paused) == 4  # backpressure: every partition paused while the queue was full
    # queue bound: queue_batches + the cuts one poll of max_poll_records can close (+1)
    assert max(depth) <= 2 + 200 // 100 + 1


def test_start_errors_are_one_line_with_exit_2(tmp_path, base_ckpt):
    reg = f"registry.url=sqlite:///{tmp_path / 'r.db'}"
    cases = [
        (["--set", reg], "no model to start from"),
        (["--set", reg, "--set", f"worker.init_checkpoint={base_ckpt}", "--set",
          "joiner.policy=fnw", "--set", "worker.loss=bce"], "refusing to train on the wrong"),
        (["--set", "worker.batch_cut=sometimes"], "worker.batch_cut"),
    ]  # fmt: skip
    for args, message in cases:
        result = CliRunner().invoke(app, ["worker", *args])
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert "Traceback" not in result.output


def test_status_is_unhealthy_without_a_version_or_with_a_stale_one(stream_env, examples, base_ckpt):
    env = stream_env()
    ensure_topics(env.cfg.kafka, env.cfg.topics)
    w = worker_env(env, "w", base_ckpt, gc_freeze=True)  # the gc.freeze path runs here
    base = ["worker", "status", "--config", str(w.path)]
    result = CliRunner().invoke(app, base)
    assert result.exit_code == 1 and "no online version" in result.output
    recs = _records(examples[:300], 4)
    produce(w.cfg.kafka.bootstrap, w.cfg.topics.examples, recs[:200])
    WorkerDaemon(w.cfg, WorkerOptions(exit_when_idle_s=1.0)).run()
    assert CliRunner().invoke(app, base).exit_code == 0
    produce(w.cfg.kafka.bootstrap, w.cfg.topics.examples, recs[200:])  # waiting, nobody trains
    stale = CliRunner().invoke(app, [*base, "--set", "worker.stale_after_s=0.001"])
    assert stale.exit_code == 1 and "100 example(s) wait" in stale.output
    assert "UNHEALTHY" in stale.output


def test_a_drift_alarm_requests_an_early_reprune_once_per_interval(stream_env, base_ckpt):
    from streamer.scheduler.runs import JOB, RunLedger

    env = worker_env(stream_env(), "drift", base_ckpt)
    daemon = WorkerDaemon(env.cfg, WorkerOptions())
    try:
        daemon._drift("cvr")
        daemon._drift("ctr")  # within scheduler.drift_min_interval_s: not asked again
    finally:
        daemon.dlq.close()
        daemon.registry.close()
    ledger = RunLedger(env.cfg.registry.url)
    try:
        (reason,) = ledger.take_requests(JOB)
        assert "drift of the cvr loss" in reason
    finally:
        ledger.close()
