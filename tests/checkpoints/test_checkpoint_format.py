# mypy: allow-untyped-defs
"""Checkpoint format: round trip, atomic write, corruption detection."""

from __future__ import annotations

import struct

import pytest
import torch

from checkpoints import CorruptCheckpointError, load_checkpoint, save_checkpoint
from checkpoints.format import MAGIC
from lt4rec.config import AppConfig
from lt4rec.config.model import ModelConfig
from lt4rec.data.batch import TASKS
from lt4rec.models import MODELS, build_model
from lt4rec.testing import check_model, random_batch, random_schema
from lt4rec.train.loop import make_optimizer, train_step


@pytest.fixture
def saved(tmp_path):
    def make(name: str = "sparse_sharing"):
        torch.manual_seed(0)
        schema = random_schema()
        cfg = AppConfig(model=ModelConfig(name=name, embedding_dim=4, bottom=(8,), tower=(4,)))  # type: ignore[arg-type]
        model = build_model(cfg.model, schema)
        opt = make_optimizer(model, 0.01)
        train_step(model, random_batch(schema, 32), opt)
        path = tmp_path / "m.ckpt"
        save_checkpoint(
            path,
            model,
            config=cfg,
            spec={"sparse": ["s0"]},
            normalizer={"fields": [], "mean": [], "std": []},
            optimizer=opt.state_dict(),
            metrics={"ctr_auc": 0.7},
            step=3,
            extra={"note": "x"},
            aux={"heads/w": torch.arange(6.0).view(2, 3)},
        )
        return path, model, schema, opt

    return make


def test_round_trip_restores_everything(saved):
    path, model, schema, opt = saved()
    ck = load_checkpoint(path)
    assert ck.model_name == "sparse_sharing" and ck.step == 3
    assert ck.metrics == {"ctr_auc": 0.7} and ck.extra == {"note": "x"}
    assert ck.spec == {"sparse": ["s0"]}
    assert set(ck.aux) == {"heads/w"} and torch.equal(
        ck.aux["heads/w"], torch.arange(6.0).view(2, 3)
    )
    assert ck.normalizer is not None and ck.normalizer["fields"] == []
    assert ck.config is not None and ck.config["model"]["name"] == "sparse_sharing"
    assert ck.field_schema() == schema
    assert set(ck.masks) == set(TASKS)
    assert ck.optimizer is not None
    for k, v in opt.state_dict().items():
        assert torch.equal(ck.optimizer[k], v)
    clone = ck.build_model()
    for k, v in model.state_dict().items():
        assert torch.equal(clone.state_dict()[k], v), k
    b = random_batch(schema, 16)
    model.eval()
    clone.eval()
    with torch.no_grad():
        assert torch.equal(model(b)["cvr"], clone(b)["cvr"])


def test_no_temporary_files_left(saved, tmp_path):
    saved()
    assert [p.name for p in tmp_path.iterdir()] == ["m.ckpt"]


def _rewrite(path, fn):
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(fn(data)))


def test_truncated_file_is_refused(saved):
    path, *_ = saved()
    _rewrite(path, lambda d: d[: len(d) - 100])
    with pytest.raises(CorruptCheckpointError, match="truncated"):
        load_checkpoint(path)
    _rewrite(path, lambda d: d[:10])
    with pytest.raises(CorruptCheckpointError, match="truncated"):
        load_checkpoint(path)


@pytest.mark.parametrize("where", [0.3, 0.9])
def test_bit_flip_is_refused(saved, where):
    path, *_ = saved()

    def flip(d):
        i = 60 + int((len(d) - 61) * where)
        d[i] ^= 0x01
        return d

    _rewrite(path, flip)
    with pytest.raises(CorruptCheckpointError, match="checksum"):
        load_checkpoint(path)


def test_wrong_version_and_magic_are_refused(saved):
    path, *_ = saved()
    _rewrite(path, lambda d: d[:8] + struct.pack("<I", 99) + d[12:])
    with pytest.raises(CorruptCheckpointError, match="version 99"):
        load_checkpoint(path)
    _rewrite(path, lambda d: b"NOTACKPT" + d[8:])
    with pytest.raises(CorruptCheckpointError, match="magic"):
        load_checkpoint(path)
    assert MAGIC == b"LT4RCKPT"


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "none.ckpt")


def test_dense_model_round_trip_with_model_config_only(tmp_path):
    torch.manual_seed(0)
    schema = random_schema()
    model = build_model(
        ModelConfig(name="mmoe", embedding_dim=4, expert_hidden=(8,), tower=(4,)), schema
    )
    save_checkpoint(tmp_path / "d.ckpt", model, config=model.cfg)
    ck = load_checkpoint(tmp_path / "d.ckpt")
    assert ck.masks == {} and ck.optimizer is None and ck.config is None
    assert ck.build_model().state_dict().keys() == model.state_dict().keys()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_passes_the_shared_check_through_the_file_format(name, tmp_path):
    """``check_model`` with its round trip through a checkpoint file (format + build_model)."""

    def through_file(model, cfg, optimizer):
        path = save_checkpoint(tmp_path / f"{name}.ckpt", model, config=cfg, optimizer=optimizer)
        ck = load_checkpoint(path)
        assert ck.optimizer is not None and set(ck.optimizer) == set(optimizer)
        return ck.build_model()

    torch.set_num_threads(1)
    check_model(name, roundtrip=through_file)


def test_a_checkpoint_from_before_the_interaction_key_rebuilds_without_it(tmp_path):
    """Stored model configs lacking ``interaction`` were trained without one."""
    import dataclasses

    from checkpoints.format import Checkpoint

    torch.manual_seed(0)
    schema = random_schema()
    cfg = ModelConfig(name="sparse_sharing", embedding_dim=4, bottom=(8,), tower=(4,),
                      interaction="none")  # fmt: skip
    model = build_model(cfg, schema)
    path = save_checkpoint(tmp_path / "old.ckpt", model, config=cfg)
    ck = load_checkpoint(path)
    old = {k: v for k, v in ck.model_config.items() if k != "interaction"}
    rebuilt = dataclasses.replace(ck, model_config=old).build_model()
    assert isinstance(ck, Checkpoint) and rebuilt.embeddings.interaction is None  # type: ignore[union-attr]
    b = random_batch(schema, 8)
    model.eval()
    rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(model(b)["cvr"], rebuilt(b)["cvr"])
    assert ModelConfig().interaction == "dot"  # today's default differs: the key matters
