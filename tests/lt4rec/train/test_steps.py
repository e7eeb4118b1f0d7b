# mypy: allow-untyped-defs
"""Joint training: validation every K steps, early stopping, the selection objective."""

from __future__ import annotations

import pytest
import torch

from lt4rec.config import load_app_config
from lt4rec.testing import RandomDataset, random_schema
from lt4rec.train.steps import init_model, train_joint, validation_score

SMALL = [
    "model.profile=none", "model.name=shared_bottom", "model.embedding_dim=4",
    "model.bottom=[8]", "model.tower=[4]", "data.batch_size=64", "train.threads=1",
]  # fmt: skip


def _joint(*sets):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = load_app_config(None, [*SMALL, *sets])
    schema = random_schema()
    model, _ = init_model(cfg, schema, torch.device("cpu"))
    train, valid = RandomDataset.make(schema, 640, seed=1), RandomDataset.make(schema, 256, seed=2)
    gen = torch.Generator().manual_seed(0)
    return model, train_joint(cfg, model, train, valid, torch.device("cpu"), gen, progress=False)


def test_validates_every_k_steps_and_after_each_epoch():
    _, res = _joint("train.epochs=2", "train.eval_every=4")
    # 10 steps per epoch; K counts global steps; every epoch ends with a validation
    assert [h["step"] for h in res.history] == [4, 8, 10, 12, 16, 20]
    assert [h["epoch"] for h in res.history] == [1, 1, 1, 2, 2, 2]
    best = max(res.history, key=lambda h: h["score"])
    assert (res.best_step, res.best_epoch) == (best["step"], best["epoch"])
    assert res.valid_metrics["ctr_auc"] == best["ctr_auc"] and res.steps == 20


def test_the_best_validated_state_is_kept():
    model, res = _joint("train.epochs=3", "train.eval_every=5", "train.lr=0.05")
    from lt4rec.train.steps import evaluate

    valid = RandomDataset.make(random_schema(), 256, seed=2)
    again = evaluate(model, valid, torch.device("cpu"), 64, gauc=False)
    assert again["ctr_auc"] == pytest.approx(res.valid_metrics["ctr_auc"])
    assert again["cvr_auc"] == pytest.approx(res.valid_metrics["cvr_auc"])


def test_patience_counts_validations():
    _, res = _joint("train.epochs=50", "train.eval_every=2", "train.patience=2", "train.lr=0.05")
    assert res.epochs_run < 50
    after_best = [h for h in res.history if h["step"] > res.best_step]
    assert len(after_best) == 2  # stopped at the second validation without improvement
    assert all(h["score"] <= validation_score(res.valid_metrics, "auc_sum") for h in after_best)


@pytest.mark.parametrize("objective", ["auc_sum", "cvr_auc", "ctr_auc", "ctcvr_auc"])
def test_the_objective_chooses_the_kept_state(objective):
    _, res = _joint("train.epochs=2", "train.eval_every=3", f"train.objective={objective}")
    scores = [validation_score(h, objective) for h in res.history]
    assert validation_score(res.valid_metrics, objective) == max(scores)
    assert [h["score"] for h in res.history] == scores


def test_lr_schedule_and_frozen_embeddings_leave_a_model_ready_to_continue():
    model, res = _joint(
        "train.epochs=2",
        "train.warmup_steps=3",
        "train.lr_decay=cosine",
        "train.embedding_epochs=1",
    )
    assert res.optimizer.lr == pytest.approx(0.01)  # the base lr, for the online worker
    assert model.embeddings.weight.requires_grad  # type: ignore[union-attr]
