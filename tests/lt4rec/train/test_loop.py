# mypy: allow-untyped-defs
"""Losses and the training step (sparse-sharing fast path == generic computation)."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from lt4rec.config.model import ModelConfig
from lt4rec.models import build_model
from lt4rec.testing import random_batch, random_schema
from lt4rec.train.loop import make_optimizer, predict, task_losses, train_step


@pytest.fixture
def model_and_batch():
    def make(name: str = "sparse_sharing"):
        torch.manual_seed(0)
        schema = random_schema()
        cfg = ModelConfig(name=name, embedding_dim=4, bottom=(16,), tower=(8,))  # type: ignore[arg-type]
        return build_model(cfg, schema), random_batch(schema, 96, torch.Generator().manual_seed(4))

    return make


@pytest.mark.parametrize("cvr_loss", ["clicked", "entire_space"])
@pytest.mark.parametrize("tasks", [("ctr", "cvr"), ("cvr",), ("ctr",)])
def test_sparse_step_losses_equal_generic_losses(model_and_batch, cvr_loss, tasks):
    model, batch = model_and_batch()
    ref = copy.deepcopy(model)
    ref.train()
    want = task_losses(ref(batch), batch, entire_space=cvr_loss == "entire_space", tasks=tasks)
    got = train_step(model, batch, make_optimizer(model, 0.01), cvr_loss=cvr_loss, tasks=tasks)
    assert set(got) == set(tasks)
    for t in tasks:
        assert got[t] == pytest.approx(float(want[t].detach()), rel=1e-5)


def test_clicked_loss_ignores_unclicked_rows(model_and_batch):
    model, batch = model_and_batch("shared_bottom")
    logits = model(batch)
    other = dict(logits)
    other["cvr"] = torch.where(batch.click > 0, logits["cvr"], torch.full_like(logits["cvr"], 50.0))
    a = task_losses(logits, batch, entire_space=False)["cvr"]
    b = task_losses(other, batch, entire_space=False)["cvr"]
    assert torch.equal(a, b)


def test_cvr_step_without_clicks_is_finite(model_and_batch):
    model, batch = model_and_batch()
    batch = dataclasses.replace(
        batch, click=torch.zeros(len(batch)), conversion=torch.zeros(len(batch))
    )
    out = train_step(model, batch, make_optimizer(model, 0.01), tasks=("cvr",))
    assert out["cvr"] == 0.0
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_entire_space_loss_is_bce_of_ctcvr(model_and_batch):
    model, batch = model_and_batch("esmm")
    logits = model(batch)
    p = torch.sigmoid(logits["ctr"]) * torch.sigmoid(logits["cvr"])
    want = torch.nn.functional.binary_cross_entropy(p, batch.click * batch.conversion)
    got = task_losses(logits, batch, entire_space=True)["cvr"]
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-5)


def test_predict_returns_probabilities_in_row_order(model_and_batch):
    model, batch = model_and_batch()
    p = predict(model, [batch], torch.device("cpu"))
    assert p.p_ctr.shape == (96,) and ((p.p_ctr > 0) & (p.p_ctr < 1)).all()
    assert (p.click == batch.click.numpy()).all() and p.user is not None
