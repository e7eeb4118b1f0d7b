# mypy: allow-untyped-defs
"""Masked online fine-tuning: pruned weights stay 0, a CVR-only batch moves only CVR weights."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest
import torch

from checkpoints import load_checkpoint
from lt4rec.config import AppConfig, JoinerConfig, WorkerConfig
from lt4rec.data.batch import TASKS
from lt4rec.train.delayed import LOSSES, PlainBCE
from streamer.worker.examples import parse_example
from streamer.worker.holder import ModelHolder, WorkerError, active_tasks, make_loss


@pytest.fixture
def holder(base_ckpt):
    return ModelHolder.from_checkpoint(load_checkpoint(base_ckpt), AppConfig(), None)


def _batches(holder, examples, size=256, start=0):
    for i in range(start, len(examples) - size + 1, size):
        rows = examples[i : i + size]
        parsed = [
            parse_example(
                0, i + k, r.key, r.value, r.headers(), "wait_full", holder.encoder.columns
            )
            for k, r in enumerate(rows)
        ]
        yield holder.encoder.encode(parsed)


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_online_steps_keep_masks_frozen_and_pruned_weights_zero(holder, examples):
    model = holder.model
    masks0 = {t: {k: m.clone() for k, m in layers.items()} for t, layers in model.masks().items()}
    before = _snapshot(model)
    steps = 0
    for batch, meta in _batches(holder, examples):
        res = holder.step(batch, meta)
        assert set(res.losses) == set(TASKS)
        steps += 1
    assert steps >= 15
    after = _snapshot(model)
    for t in TASKS:
        for k, m in model.masks()[t].items():
            assert torch.equal(m, masks0[t][k]), f"mask {t}/{k} changed"
            w = model.state_dict()[k] * m  # the task's effective weights W ⊙ M_t
            assert torch.all(w[m == 0] == 0), f"a weight pruned for {t} is not 0"
    for k in masks0["ctr"]:
        dead = (masks0["ctr"][k] == 0) & (masks0["cvr"][k] == 0)  # pruned for every task
        assert dead.any()
        assert torch.equal(after[k][dead], before[k][dead]), f"{k}: a fully pruned weight moved"
        live = ~dead
        assert not torch.equal(after[k][live], before[k][live])  # the step did train


class CvrOnly(PlainBCE):
    """A feedback loss that weighs every row 0 for CTR (e.g. a conversion correction)."""

    name = "cvr_only_test"

    def weights(self, model, batch, meta) -> Mapping[str, torch.Tensor]:
        return {"ctr": torch.zeros(len(batch)), "cvr": torch.ones(len(batch))}


def test_a_cvr_only_batch_leaves_every_weight_outside_the_cvr_mask_bit_identical(holder, examples):
    gen = _batches(holder, examples)
    for _ in range(3):  # momentum for every task first: a zero-gradient step would move them
        holder.step(*next(gen))
    holder.loss = CvrOnly()
    batch, meta = next(gen)
    assert active_tasks(batch, holder.loss.weights(holder.model, batch, meta), False) == ["cvr"]
    model = holder.model
    before = _snapshot(model)
    opt_before = {k: v.clone() for k, v in holder.optimizer.state_dict().items()}
    res = holder.step(batch, meta)
    assert set(res.losses) == {"cvr"} and res.trained == {"ctr": 0, "cvr": int(batch.click.sum())}
    after = _snapshot(model)
    cvr_masks = model.masks()["cvr"]
    moved = False
    for k, v in after.items():
        if k in cvr_masks:
            outside = cvr_masks[k] == 0
            assert torch.equal(v[outside], before[k][outside]), f"{k} moved outside the CVR mask"
            moved |= not torch.equal(v[~outside], before[k][~outside])
        elif ".bias.ctr" in k:
            assert torch.equal(v, before[k]), f"{k} (CTR-private) moved"
        elif k == "embeddings.weight":
            rows = torch.zeros(v.shape[0], dtype=torch.bool)
            clicked = batch.take(batch.click > 0)
            ids = [clicked.sparse + model.embeddings.offsets[: clicked.sparse.shape[1]]]
            ids.append(
                (
                    clicked.multi
                    + model.embeddings.offsets[clicked.sparse.shape[1] :].view(1, -1, 1)
                ).flatten(1)
            )
            rows[torch.cat([i.flatten() for i in ids])] = True
            assert torch.equal(v[~rows], before[k][~rows]), (
                "an embedding row outside the batch moved"
            )
    assert moved, "the CVR weights did not train"
    for k, v in holder.optimizer.state_dict().items():
        if k.startswith("ctr:"):
            assert torch.equal(v, opt_before[k]), f"CTR optimiser state {k} changed"


def test_progressive_scores_are_taken_before_the_update(holder, examples):
    batch, meta = next(_batches(holder, examples))
    holder.model.eval()
    with torch.no_grad():
        want = torch.sigmoid(holder.model(batch)["ctr"])
    res = holder.step(batch, meta)
    p, y = res.scores["ctr"]
    torch.testing.assert_close(p, want, rtol=1e-5, atol=1e-6)
    assert torch.equal(y, batch.click)
    assert res.scores["cvr"][0].shape[0] == int(batch.click.sum())


def test_a_loss_for_another_policy_is_refused():
    cfg = AppConfig(joiner=JoinerConfig(policy="fnw"), worker=WorkerConfig(loss="bce"))
    with pytest.raises(WorkerError, match=r"expects examples of joiner\.policy 'wait_full'"):
        make_loss(cfg)
    if "fnw" not in LOSSES:  # until the FNW loss exists, its policy has no loss at all
        with pytest.raises(WorkerError, match="unknown delayed-feedback loss 'fnw'"):
            make_loss(dataclasses.replace(cfg, worker=WorkerConfig()))
    assert make_loss(AppConfig()).name == "bce"
