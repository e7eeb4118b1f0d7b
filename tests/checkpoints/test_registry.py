# mypy: allow-untyped-defs
"""The version registry and publishing, on SQLite and on PostgreSQL (``db_url``)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import pytest
import torch

from checkpoints import (
    CorruptCheckpointError,
    Notice,
    Registry,
    RegistryError,
    load_newest_good,
    publish,
    rollback,
    save_checkpoint,
)
from checkpoints.publish import pending_notices
from lt4rec.config import ModelConfig, RegistryConfig
from lt4rec.models import build_model
from lt4rec.testing import random_schema

pytestmark = pytest.mark.postgres


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(embedding_dim=4, bottom=(8,), tower=(4,)), random_schema())


@pytest.fixture
def make_registry(db_url, tmp_path):
    made = []

    def make(**kw) -> Registry:
        reg = Registry(RegistryConfig(url=db_url, dir=str(tmp_path / "models"), **kw))
        made.append(reg)
        return reg

    yield make
    for reg in made:
        reg.close()


def _save(reg, model, kind="online", parent=None, **kw):
    cfg = ModelConfig(embedding_dim=4, bottom=(8,), tower=(4,))
    return reg.save(
        kind,
        lambda p: save_checkpoint(p, model, config=cfg),
        model_name="sparse_sharing",
        parent=parent,
        **kw,
    )


def test_save_get_list_latest(make_registry, model):
    reg = make_registry()
    a = _save(reg, model, "offline", metrics={"ctr_auc": 0.7}, data_range=(1, 2))
    b = _save(reg, model, parent=a.version)
    assert b.version > a.version and b.parent == a.version
    assert a.status == "ready" and a.metrics == {"ctr_auc": 0.7}
    assert (a.data_first_ts, a.data_last_ts) == (1, 2)
    assert a.path is not None and a.path.endswith(f"{a.version:08d}-offline.ckpt")
    assert a.sha256 is not None and len(a.sha256) == 64 and a.size and a.size > 0
    assert [v.version for v in reg.versions()] == [b.version, a.version]
    assert reg.latest(["offline"]) == reg.get(a.version)
    with pytest.raises(RegistryError, match="does not exist"):
        reg.get(9999)
    with pytest.raises(RegistryError, match="unknown version kind"):
        _save(reg, model, "weird")


def test_a_second_registry_object_sees_the_same_versions(make_registry, model):
    a = make_registry()
    v = _save(a, model)
    assert make_registry().get(v.version) == v


def test_a_failed_write_marks_the_version_failed(make_registry):
    reg = make_registry()

    def boom(path):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        reg.save("online", boom, model_name="m")
    (v,) = reg.versions()
    assert v.status == "failed" and "disk full" in v.reason
    assert reg.latest() is None


def test_publish_current_and_rollback(make_registry, model):
    reg = make_registry()
    v1, v2 = _save(reg, model), _save(reg, model)
    assert reg.current() is None
    n1 = publish(reg, v1.version, "first")
    n2 = publish(reg, v2.version, "better")
    assert n2.publication > n1.publication and reg.current().version.version == v2.version
    assert reg.get(v1.version).status == "published"
    back = rollback(reg)
    assert back.version == v1.version and back.action == "rollback"
    assert back.publication > n2.publication
    assert reg.current().version.version == v1.version
    assert Notice.from_json(back.to_json()) == back


def test_publish_refuses_a_corrupt_file_and_keeps_the_old_version(make_registry, model):
    reg = make_registry()
    v1, v2 = _save(reg, model), _save(reg, model)
    publish(reg, v1.version)
    with open(v2.path, "r+b") as f:  # flip one byte in the middle
        f.seek(v2.size // 2)
        byte = f.read(1)
        f.seek(v2.size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CorruptCheckpointError, match="sha256"):
        publish(reg, v2.version)
    assert reg.get(v2.version).status == "corrupt"
    assert reg.current().version.version == v1.version
    with pytest.raises(RegistryError, match="only ready versions"):
        publish(reg, v2.version)


def test_load_newest_good_skips_corrupt_and_truncated_versions(make_registry, model):
    reg = make_registry()
    good = _save(reg, model)
    trunc = _save(reg, model)
    flipped = _save(reg, model)
    with open(trunc.path, "r+b") as f:
        f.truncate(trunc.size // 3)
    with open(flipped.path, "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    found = load_newest_good(reg)
    assert found is not None
    info, ckpt, skipped = found
    assert info.version == good.version and ckpt.model_name == "sparse_sharing"
    assert [s[0].version for s in skipped] == [flipped.version, trunc.version]
    assert {reg.get(v).status for v in (trunc.version, flipped.version)} == {"corrupt"}
    assert reg.get(good.version).status == "ready"


def test_notices_are_pending_until_marked(make_registry, model):
    reg = make_registry()
    v = _save(reg, model)
    n = publish(reg, v.version)
    assert pending_notices(reg) == [n]
    reg.mark_notified(n.publication)
    assert pending_notices(reg) == []


def test_retention_keeps_the_newest_and_every_published_version(make_registry, model):
    reg = make_registry(keep_last=2)
    vs = [_save(reg, model) for _ in range(5)]
    publish(reg, vs[0].version)
    removed = reg.retain()
    assert removed == [vs[2].version, vs[1].version]
    assert reg.get(vs[1].version).status == "deleted" and reg.get(vs[1].version).path is None
    assert not os.path.exists(vs[1].path)
    for v in (vs[0], vs[3], vs[4]):
        assert os.path.exists(reg.get(v.version).path)


def test_stale_staging_rows_are_failed_by_retention(make_registry):
    reg = make_registry(staging_timeout_s=0.01)
    version = reg._stage("online", "m", None)
    time.sleep(0.05)
    reg.retain()
    assert reg.get(version).status == "failed"


def _writer(url: str, root: str, ready) -> None:
    reg = Registry(RegistryConfig(url=url, dir=root))

    def slow(path):
        path.write_bytes(b"partial")
        ready.set()
        time.sleep(60)

    reg.save("online", slow, model_name="m")


def test_a_writer_killed_mid_save_leaves_no_servable_version(make_registry, db_url, tmp_path):
    reg = make_registry()
    ready = mp.get_context("spawn").Event()
    proc = mp.get_context("spawn").Process(
        target=_writer, args=(db_url, str(tmp_path / "models"), ready)
    )
    proc.start()
    assert ready.wait(60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert reg.latest() is None
    (row,) = reg.versions()
    assert row.status == "staging"
    with pytest.raises(RegistryError):
        publish(reg, row.version)
