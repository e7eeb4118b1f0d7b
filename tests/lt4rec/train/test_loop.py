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


@pytest.mark.parametrize("cvr_loss", ["clicked", "entire_space"])
@pytest.mark.parametrize("tasks", [("ctr", "cvr"), ("cvr",)])
def test_sample_weights_give_the_weighted_mean_loss(model_and_batch, cvr_loss, tasks):
    model, batch = model_and_batch()
    entire = cvr_loss == "entire_space"
    g = torch.Generator().manual_seed(9)
    w = {t: torch.rand(len(batch), generator=g) * 2 for t in ("ctr", "cvr")}
    ref = copy.deepcopy(model)
    ref.train()
    with torch.no_grad():
        logits = ref(batch)
    got = train_step(
        model, batch, make_optimizer(model, 0.01), cvr_loss=cvr_loss, tasks=tasks, weights=w
    )
    f = torch.nn.functional
    if "ctr" in tasks:
        row = f.binary_cross_entropy_with_logits(logits["ctr"], batch.click, reduction="none")
        assert got["ctr"] == pytest.approx(float((row * w["ctr"]).mean()), rel=1e-5)
    if entire:
        p = torch.sigmoid(logits["ctr"]) * torch.sigmoid(logits["cvr"])
        y = batch.click * batch.conversion
        row = f.binary_cross_entropy(p, y, reduction="none")
        want = (row * w["cvr"]).mean()
    else:
        c = batch.click > 0
        row = f.binary_cross_entropy_with_logits(
            logits["cvr"][c], batch.conversion[c], reduction="none"
        )
        want = (row * w["cvr"][c]).mean()
    assert got["cvr"] == pytest.approx(float(want), rel=1e-4)


def test_unit_weights_train_exactly_like_no_weights(model_and_batch):
    a, batch = model_and_batch()
    b = copy.deepcopy(a)
    ones = {t: torch.ones(len(batch)) for t in ("ctr", "cvr")}
    train_step(a, batch, make_optimizer(a, 0.01))
    train_step(b, batch, make_optimizer(b, 0.01), weights=ones)
    for (n, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-6), n


def test_zero_weight_rows_do_not_move_the_model(model_and_batch):
    model, batch = model_and_batch("shared_bottom")
    before = copy.deepcopy(model.state_dict())
    zeros = {t: torch.zeros(len(batch)) for t in ("ctr", "cvr")}
    train_step(model, batch, make_optimizer(model, 0.01), weights=zeros)
    for n, v in model.state_dict().items():
        assert torch.equal(v, before[n]), n


@pytest.mark.parametrize("name", ["sparse_sharing", "shared_bottom"])
@pytest.mark.parametrize("cvr_loss", ["clicked", "entire_space"])
def test_logits_out_are_the_scores_before_the_update(model_and_batch, name, cvr_loss):
    model, batch = model_and_batch(name)
    model.eval()
    with torch.no_grad():
        before = model(batch)
    out: dict[str, torch.Tensor] = {}
    train_step(model, batch, make_optimizer(model, 0.01), cvr_loss=cvr_loss, logits_out=out)
    clicked = batch.click > 0
    torch.testing.assert_close(out["ctr"], before["ctr"], rtol=1e-5, atol=1e-6)
    want_cvr = before["cvr"] if cvr_loss == "entire_space" else before["cvr"][clicked]
    torch.testing.assert_close(out["cvr"], want_cvr, rtol=1e-5, atol=1e-6)
    assert not out["ctr"].requires_grad
    with torch.no_grad():
        after = model(batch)
    assert not torch.allclose(after["ctr"], before["ctr"])  # the step did update the model
def test_counterfactual_loss_is_ips_risk_plus_ctcvr(model_and_batch):
    model, batch = model_and_batch("escm2")
    logits = model(batch)
    cfg = dataclasses.replace(model.cfg, ips_weight=0.7, ctcvr_weight=0.3, min_propensity=0.1)
    got = task_losses(logits, batch, objective="counterfactual", model_cfg=cfg)["cvr"]
    prop = torch.sigmoid(logits["ctr"]).clamp(min=0.1)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        logits["cvr"], batch.conversion, reduction="none"
    )
    ips = (batch.click * bce / prop).mean()
    ctcvr = task_losses(logits, batch, objective="entire_space")["cvr"]
    assert float(got.detach()) == pytest.approx(float((0.7 * ips + 0.3 * ctcvr).detach()), rel=1e-5)
    # the model's own objective wins over train.cvr_loss
    step = train_step(model, batch, make_optimizer(model, 0.01), cvr_loss="clicked")
    want = task_losses(logits, batch, objective="counterfactual", model_cfg=model.cfg)["cvr"]
    assert step["cvr"] == pytest.approx(float(want.detach()), rel=1e-5)


@pytest.mark.parametrize("name", ["shared_bottom", "sparse_sharing", "single"])
def test_cvr_weight_scales_the_step_of_parameters_only_cvr_trains(model_and_batch, name):
    """Adam divides a loss scale out; cvr_weight must still double CVR's own step."""
    model, batch = model_and_batch(name)
    twin = copy.deepcopy(model)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    train_step(model, batch, make_optimizer(model, 0.01), tasks=("cvr",))
    train_step(twin, batch, make_optimizer(twin, 0.01), tasks=("cvr",), cvr_weight=2.0)
    a, b = dict(model.named_parameters()), dict(twin.named_parameters())
    own = list(twin.own_parameters("cvr"))
    assert own
    for n in own + (["layers.0.weight"] if name == "sparse_sharing" else []):
        d1, d2 = a[n].detach() - before[n], b[n].detach() - before[n]
        big = d1.abs() > 0.0099  # first Adam step ~ lr * sign(g) where |g| >> eps
        assert big.any(), n
        assert torch.allclose(d2[big], 2 * d1[big], rtol=0.02), n


def test_embedding_l2_shrinks_only_the_rows_a_batch_touches(model_and_batch):
    model, batch = model_and_batch("shared_bottom")
    twin = copy.deepcopy(model)
    train_step(model, batch, make_optimizer(model, 0.01))
    train_step(twin, batch, make_optimizer(twin, 0.01), embedding_l2=10.0)
    w0, w1 = model.embeddings.weight.detach(), twin.embeddings.weight.detach()
    touched = torch.zeros(w0.shape[0], dtype=torch.bool)
    touched[batch.sparse + model.embeddings.offsets[:3]] = True
    multi = (batch.multi + model.embeddings.offsets[3:].view(1, -1, 1)).flatten()
    touched[multi] = True
    assert torch.equal(w0[~touched], w1[~touched])
    assert not torch.equal(w0[touched], w1[touched])


def test_frozen_embeddings_do_not_move(model_and_batch):
    from lt4rec.train.loop import set_embeddings_trainable

    model, batch = model_and_batch("sparse_sharing")
    before = model.embeddings.weight.detach().clone()
    set_embeddings_trainable(model, False)
    train_step(model, batch, make_optimizer(model, 0.01))
    assert torch.equal(model.embeddings.weight.detach(), before)
    set_embeddings_trainable(model, True)
    train_step(model, batch, make_optimizer(model, 0.01))
    assert not torch.equal(model.embeddings.weight.detach(), before)
