# mypy: allow-untyped-defs
"""TaskMaskedAdam: no cross-task leakage, bit-exactly."""

from __future__ import annotations

import pytest
import torch

from lt4rec.config.model import ModelConfig
from lt4rec.data.batch import TASKS
from lt4rec.models import SparseSharing, build_model
from lt4rec.testing import random_batch, random_schema
from lt4rec.train.loop import make_optimizer, train_step
from lt4rec.train.optim import TaskMaskedAdam


@pytest.fixture
def sparse_model():
    def make(seed: int = 0):
        torch.manual_seed(seed)
        schema = random_schema()
        cfg = ModelConfig(name="sparse_sharing", embedding_dim=4, bottom=(32, 16), tower=(8,))
        model = build_model(cfg, schema)
        assert isinstance(model, SparseSharing)
        g = torch.Generator().manual_seed(seed + 7)
        for t in TASKS:
            model.set_masks(
                t,
                {
                    k: (torch.rand(m.shape, generator=g) < 0.6).float()
                    for k, m in model.masks()[t].items()
                },
            )
        return model, schema

    return make


def _regions(model):
    """Per layer: bool tensors private_ctr, private_cvr, pruned_all."""
    out = {}
    for k in model.layer_names():
        a, b = model.masks()["ctr"][k].bool(), model.masks()["cvr"][k].bool()
        out[k] = {"ctr": a & ~b, "cvr": b & ~a, "none": ~a & ~b}
    return out


def test_steps_with_only_cvr_loss_leave_ctr_private_weights_bit_identical(sparse_model):
    model, schema = sparse_model()
    opt = make_optimizer(model, lr=0.05)
    g = torch.Generator().manual_seed(1)
    # joint steps first, so CTR's Adam moments are non-zero (momentum must not leak)
    for _ in range(3):
        train_step(model, random_batch(schema, 128, g), opt)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    regions = _regions(model)
    for _ in range(3):
        train_step(model, random_batch(schema, 128, g), opt, tasks=("cvr",))
    after = dict(model.named_parameters())
    moved_cvr = 0
    assert sum(int(r["ctr"].sum()) for r in regions.values()) > 0
    assert sum(int(r["none"].sum()) for r in regions.values()) > 0
    for k, r in regions.items():
        assert torch.equal(after[k].detach()[r["ctr"]], before[k][r["ctr"]]), (
            f"{k}: CTR-private moved"
        )
        assert torch.equal(after[k].detach()[r["none"]], before[k][r["none"]]), f"{k}: pruned moved"
        moved_cvr += int((after[k].detach()[r["cvr"]] != before[k][r["cvr"]]).sum())
    assert moved_cvr > 0, "CVR-private weights did not learn on CVR steps"
    for i in range(len(model.layers)):
        name = f"layers.{i}.bias.ctr"
        assert torch.equal(after[name].detach(), before[name]), f"{name} moved on CVR-only steps"


def test_joint_steps_never_move_weights_pruned_for_all(sparse_model):
    model, schema = sparse_model(3)
    opt = make_optimizer(model, lr=0.05, weight_decay=0.1)
    regions = _regions(model)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    g = torch.Generator().manual_seed(2)
    for _ in range(4):
        train_step(model, random_batch(schema, 128, g), opt, cvr_loss="entire_space")
    moved = 0
    for k, r in regions.items():
        w = dict(model.named_parameters())[k].detach()
        assert torch.equal(w[r["none"]], before[k][r["none"]])
        moved += int((w != before[k]).sum())
    assert moved > 0


def test_dense_update_matches_torch_adam():
    torch.manual_seed(0)
    p1 = torch.nn.Parameter(torch.randn(5, 3))
    p2 = torch.nn.Parameter(p1.detach().clone())
    ours = TaskMaskedAdam({"w": p1}, lr=0.01)
    ref = torch.optim.Adam([p2], lr=0.01)
    for i in range(5):
        g = torch.randn(5, 3, generator=torch.Generator().manual_seed(i))
        p1.grad, p2.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
    assert torch.allclose(p1, p2, atol=1e-6)


def test_row_update_touches_only_given_rows():
    p = torch.nn.Parameter(torch.zeros(6, 2))
    opt = TaskMaskedAdam({"emb": p}, lr=0.1)
    opt.step(row_grads={"emb": (torch.tensor([1, 4]), torch.ones(2, 2))})
    moved = (p.detach() != 0).any(1)
    assert moved.tolist() == [False, True, False, False, True, False]


def test_bad_owner_and_task_are_rejected():
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(KeyError, match="unknown parameter"):
        TaskMaskedAdam({"w": p}, {"ctr": {"nope": None}})
    opt = TaskMaskedAdam({"w": p}, {"ctr": {"w": None}})
    with pytest.raises(KeyError, match="unknown task"):
        opt.step({"cvr": {"w": torch.ones(2)}})


def test_scheduled_lr_warms_up_and_decays():
    from lt4rec.train.optim import scheduled_lr

    assert scheduled_lr(1.0, 0, 100) == 1.0 == scheduled_lr(1.0, 99, 100)
    assert [scheduled_lr(1.0, s, 100, warmup=4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert scheduled_lr(1.0, 4, 104, warmup=4, decay="cosine") == pytest.approx(1.0)
    assert scheduled_lr(1.0, 54, 104, warmup=4, decay="cosine") == pytest.approx(0.5)
    assert scheduled_lr(1.0, 104, 104, warmup=4, decay="linear") == pytest.approx(0.0)
    assert scheduled_lr(2.0, 50, 100, decay="linear") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="lr_decay"):
        scheduled_lr(1.0, 5, 10, decay="step")
