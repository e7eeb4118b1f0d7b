# mypy: allow-untyped-defs
"""Online versions in the registry (SQLite and PostgreSQL): resume, corrupt fallback, start."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from checkpoints import Registry, load_checkpoint
from lt4rec.config import AppConfig, RegistryConfig, WorkerConfig
from streamer.worker.checkpoint import load_start, save_online
from streamer.worker.examples import parse_example
from streamer.worker.holder import WorkerError
from streamer.worker.position import Advance, StreamPosition
from streamer.worker.progressive import ProgressiveMetrics

pytestmark = pytest.mark.postgres


@pytest.fixture
def setup(db_url, tmp_path, base_ckpt):
    cfg = AppConfig(
        registry=RegistryConfig(url=db_url, dir=str(tmp_path / "models")),
        worker=WorkerConfig(init_checkpoint=str(base_ckpt), metrics_window=300),
    )
    reg = Registry(cfg.registry)
    yield cfg, reg
    reg.close()


def _train(cfg, holder, position, progress, examples, start, n=256):
    rows = examples[start : start + n]
    parsed = [
        parse_example(
            0, start + k, r.key, r.value, r.headers(), "wait_full", holder.encoder.columns
        )
        for k, r in enumerate(rows)
    ]
    batch, meta = holder.encoder.encode(parsed)
    res = holder.step(batch, meta)
    progress.add(res.scores)
    adv = Advance()
    for e in parsed:
        adv.see(0, e.offset)
        adv.mark(0, e.source, e.seq, e.ts)
    position.advance(adv, {**res.trained, "examples": len(parsed), "steps": 1, "batches": 1})


def _start(cfg, reg):
    progress = ProgressiveMetrics(cfg.worker.metrics_window, cfg.worker.drift_delta)
    return load_start(reg, cfg, progress), progress


def test_a_saved_online_version_resumes_everything(setup, examples):
    cfg, reg = setup
    start, progress = _start(cfg, reg)
    assert start.source.startswith("file ") and not start.resumed and start.holder.version is None
    h, pos = start.holder, start.position
    _train(cfg, h, pos, progress, examples, 0)
    v1 = save_online(reg, cfg, h, pos, progress)
    h.version = v1.version
    _train(cfg, h, pos, progress, examples, 256)
    v2 = save_online(reg, cfg, h, pos, progress)
    assert (v1.kind, v1.parent, v2.parent) == ("online", None, v1.version)
    assert v2.data_first_ts == pos.first_ts and v2.data_last_ts == pos.last_ts
    assert v2.metrics["trained_examples"] == 512 and 0 <= v2.metrics["ctr_auc"] <= 1

    again, progress2 = _start(cfg, reg)
    assert again.resumed and again.source == f"online version {v2.version}"
    assert again.holder.version == v2.version
    assert again.position.to_dict() == pos.to_dict()
    for k, v in h.model.state_dict().items():
        assert torch.equal(v, again.holder.model.state_dict()[k]), k
    opt_a, opt_b = h.optimizer.state_dict(), again.holder.optimizer.state_dict()
    assert opt_a.keys() == opt_b.keys() and all(torch.equal(opt_a[k], opt_b[k]) for k in opt_a)
    # river's rolling logloss is a running sum (add / revert): equal up to rounding
    assert progress2.snapshot() == pytest.approx(progress.snapshot(), rel=1e-12, nan_ok=True)
    assert progress2.snapshot()["ctr_auc"] == progress.snapshot()["ctr_auc"]


@pytest.mark.parametrize("damage", ["bit_flip", "truncate"])
def test_a_corrupt_newest_version_falls_back_to_the_previous_good_one(setup, examples, damage):
    cfg, reg = setup
    start, progress = _start(cfg, reg)
    h, pos = start.holder, start.position
    _train(cfg, h, pos, progress, examples, 0)
    good = save_online(reg, cfg, h, pos, progress)
    h.version = good.version
    _train(cfg, h, pos, progress, examples, 256)
    bad = save_online(reg, cfg, h, pos, progress)
    path = Path(bad.path)
    data = bytearray(path.read_bytes())
    if damage == "bit_flip":
        data[len(data) // 2] ^= 0x10
    else:
        data = data[: len(data) - 100]
    path.write_bytes(bytes(data))

    again, _ = _start(cfg, reg)
    assert again.source == f"online version {good.version}"
    assert [(i.version, "sha256" in r or "truncated" in r) for i, r in again.skipped] == [
        (bad.version, True)
    ]
    assert reg.get(bad.version).status == "corrupt"
    assert again.position.counters["examples"] == 256  # the good version's position
    assert again.position.offsets == {0: 256}


def test_start_order_online_then_init_file_then_offline(setup, tmp_path, base_ckpt):
    cfg, reg = setup
    offline = reg.save("offline", lambda p: shutil.copy(base_ckpt, p), model_name="sparse_sharing")
    start, _ = _start(cfg, reg)
    assert start.source.startswith("file ")  # init_checkpoint beats an offline version
    no_init = dataclasses.replace(cfg, worker=WorkerConfig())
    start, _ = _start(no_init, reg)
    assert (
        start.source == f"offline version {offline.version}"
        and start.holder.version == offline.version
    )
    reg.mark(offline.version, "rejected")
    with pytest.raises(WorkerError, match="no model to start from"):
        _start(no_init, reg)


def test_unusable_init_checkpoints_are_refused_clearly(setup, tmp_path, base_ckpt):
    cfg, reg = setup
    foreign = tmp_path / "foreign.ckpt"
    foreign.write_bytes(b"PK\x03\x04 not a checkpoint at all" * 10)
    bad = dataclasses.replace(cfg, worker=WorkerConfig(init_checkpoint=str(foreign)))
    with pytest.raises(WorkerError, match="not an lt4rec checkpoint"):
        _start(bad, reg)
    missing = dataclasses.replace(cfg, worker=WorkerConfig(init_checkpoint=str(tmp_path / "no")))
    with pytest.raises(WorkerError, match="missing"):
        _start(missing, reg)
    from checkpoints import save_checkpoint

    ck = load_checkpoint(base_ckpt)
    bare = tmp_path / "bare.ckpt"
    save_checkpoint(bare, ck.build_model(), config=AppConfig().model.__class__(**{
        k: tuple(v) if isinstance(v, list) else v for k, v in ck.model_config.items()
    }))  # fmt: skip
    no_spec = dataclasses.replace(cfg, worker=WorkerConfig(init_checkpoint=str(bare)))
    with pytest.raises(WorkerError, match="no feature spec"):
        _start(no_spec, reg)


def test_position_round_trips_through_json():
    pos = StreamPosition("t")
    adv = Advance()
    adv.see(3, 41)
    adv.mark(3, 1, 7, 1_800_000_000_000)
    adv.duplicates = 2
    pos.advance(adv, {"examples": 1, "ctr": 1})
    back = StreamPosition.from_dict(pos.to_dict())
    assert back.to_dict() == pos.to_dict()
    assert (
        back.offsets == {3: 42} and back.marks.of(3) == {1: 7} and back.counters["duplicates"] == 2
    )
