# mypy: allow-untyped-defs
"""The scheduler: exclusion ledger (SQLite + PostgreSQL), idempotent runs, kill -9 safety."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time

import pytest

from checkpoints import Registry, verify
from streamer.scheduler import RepruneScheduler, RunLedger, make_trigger

LT4REC = [sys.executable, "-m", "lt4rec_cli.main"]


@pytest.mark.postgres
def test_lease_is_exclusive_renewable_and_expires(db_url):
    ledger = RunLedger(db_url)
    try:
        assert ledger.acquire("j", "a", 0.5)
        assert not ledger.acquire("j", "b", 0.5)
        assert ledger.acquire("j", "a", 0.5)  # re-entrant for its owner
        assert ledger.renew("j", "a", 0.5) and not ledger.renew("j", "b", 0.5)
        time.sleep(0.6)
        assert ledger.acquire("j", "b", 5.0)  # a's lease expired: b takes over
        assert not ledger.renew("j", "a", 0.5)
        ledger.release("j", "a")  # not a's: nothing happens
        assert not ledger.acquire("j", "a", 0.5)
        ledger.release("j", "b")
        assert ledger.acquire("j", "a", 0.5)
    finally:
        ledger.close()


@pytest.mark.postgres
def test_run_rows_are_idempotency_keys(db_url):
    ledger = RunLedger(db_url)
    try:
        assert ledger.start("j", 100, "a")
        ledger.finish("j", 100, "failed", None, "boom")
        assert ledger.start("j", 100, "b")  # a failed run is retried
        ledger.finish("j", 100, "done", 7, "ok")
        assert not ledger.start("j", 100, "c")  # a finished run is never repeated
        assert ledger.start("j", 200, "c")
        (r1, r2) = ledger.runs("j")
        assert (r1.status, r1.version, r1.owner) == ("done", 7, "b") and r2.status == "running"
        ledger.request("j", "drift: loss up")
        assert ledger.take_requests("j") == ["drift: loss up"] and ledger.take_requests("j") == []
    finally:
        ledger.close()


def test_cron_and_interval_triggers(reprune_env):
    cfg = reprune_env()
    assert "cron" in type(make_trigger(cfg)).__name__.lower()
    fast = reprune_env(scheduler={"interval_s": 2.0})
    assert "interval" in type(make_trigger(fast)).__name__.lower()


def test_a_restarted_scheduler_does_not_repeat_a_finished_run(reprune_env):
    cfg = reprune_env()
    a = RepruneScheduler(cfg, say=lambda m: None)
    first = a.run_once()
    a.close()
    assert first.ran and first.status == "done", first.reason
    b = RepruneScheduler(cfg, say=lambda m: None)  # "restarted": same window, same key
    again = b.run_once()
    b.close()
    assert not again.ran and again.status == "finished-before"
    reg = Registry(cfg.registry)
    assert len(reg.versions(kinds=["repruned"])) == 1
    reg.close()


def test_the_daemon_runs_on_its_interval_and_takes_drift_requests(reprune_env):
    cfg = reprune_env(scheduler={"interval_s": 1.0, "drift_min_interval_s": 0.0})
    sched = RepruneScheduler(cfg, say=lambda m: None)
    RunLedger(cfg.registry.url).request("reprune", "drift alarm")
    stop = threading.Event()
    outcomes = sched.serve(stop, max_runs=3, poll_s=0.2)
    sched.close()
    statuses = [o.status for o in outcomes]
    assert statuses.count("done") == 1  # one window end: the later runs find it finished
    assert set(statuses) <= {"done", "finished-before", "busy"}, statuses
    assert len(outcomes) >= 3


def _spawn(cfg_path, log, *extra):
    cmd = [*LT4REC, "scheduler", "--config", str(cfg_path), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("ab"))


def test_two_schedulers_started_together_run_the_job_once(reprune_env, tmp_path):
    cfg = reprune_env(scheduler={"interval_s": 1.0})
    log = tmp_path / "sched.log"
    procs = [_spawn(tmp_path / "reprune.toml", log, "--max-runs", "2") for _ in range(2)]
    try:
        for p in procs:
            assert p.wait(timeout=240) == 0, log.read_text()[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    ledger = RunLedger(cfg.registry.url)
    runs = ledger.runs("reprune")
    ledger.close()
    assert len(runs) == 1 and runs[0].status == "done", runs
    reg = Registry(cfg.registry)
    versions = reg.versions(kinds=["repruned"])
    assert len(versions) == 1 and versions[0].status == "published"
    reg.close()


def test_kill_9_during_a_prune_leaves_no_half_published_version(reprune_env, tmp_path):
    cfg = reprune_env(scheduler={"interval_s": 1.0, "lease_s": 3.0})
    log = tmp_path / "sched.log"
    rng = random.Random(3)
    ledger = RunLedger(cfg.registry.url)
    try:
        proc = _spawn(tmp_path / "reprune.toml", log)
        deadline = time.monotonic() + 120
        while not any(r.status == "running" for r in ledger.runs("reprune")):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the scheduler never started a run"
            time.sleep(0.05)
        time.sleep(rng.uniform(0.2, 2.0))  # somewhere in the run (data, training, saving)
        proc.kill()
        proc.wait(timeout=10)
        reg = Registry(cfg.registry)
        current = reg.current()
        if current is not None:  # killed after publishing: what is in service is whole
            verify(current.version)
        for v in reg.versions():
            assert v.status in ("staging", "ready", "published", "failed"), v
        reg.close()

        again = _spawn(tmp_path / "reprune.toml", log)  # waits out the dead run's lease
        deadline = time.monotonic() + 240
        while not any(r.status == "done" for r in ledger.runs("reprune")):
            assert again.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        again.terminate()
        assert again.wait(timeout=60) == 0, log.read_text()[-3000:]
        reg = Registry(cfg.registry)
        current = reg.current()
        assert current is not None and verify(current.version).model_name == cfg.model.name
        reg.close()
    finally:
        ledger.close()


def test_lt4rec_prune_publishes_and_announces_on_the_models_topic(reprune_env, tmp_path):
    from checkpoints import Notice
    from tests.streamer.integration.streamer_it_support import read_topic

    cfg = reprune_env()
    proc = subprocess.run(
        [*LT4REC, "prune", "--config", str(tmp_path / "reprune.toml")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "published" in proc.stdout
    (record,) = read_topic(cfg.kafka.bootstrap, cfg.topics.models)
    notice = Notice.from_json(record.value)
    reg = Registry(cfg.registry)
    try:
        current = reg.current()
        assert notice.version == current.version.version and notice.kind == "repruned"
        assert current.notified
    finally:
        reg.close()
