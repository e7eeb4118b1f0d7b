"""The model the worker trains, as one swappable object: :class:`ModelHolder`.

A holder bundles everything one optimiser step needs and a checkpoint must carry: the model
(weights and frozen per-task masks), its :class:`~lt4rec.train.optim.TaskMaskedAdam` (per-task
moments; embeddings are the shared sparse rows), the delayed-feedback loss, the encoder of the
model's feature spec and normalizer, and the registry version it descends from. The trainer
only ever goes through :meth:`ModelHolder.step`, so replacing the holder between two steps
(a re-pruned model, next issue) is a pointer swap at a batch boundary
(:meth:`streamer.worker.trainer.Trainer.swap`).

One step (:meth:`ModelHolder.step`):

1. the feedback loss turns the batch and its :class:`~lt4rec.train.delayed.StreamMeta` into
   per-row weights (``loss.weights``), the ONE call site of the loss;
2. only the tasks with something to learn take part (a task whose rows all weigh 0, or CVR
   without a clicked row, is left out: an all-zero gradient would still move its weights
   through Adam's momentum, so a CVR-only batch leaves every weight outside the CVR mask
   bit-identical);
3. :func:`~lt4rec.train.loop.train_step` runs the masked step and returns the logits of its
   forward pass, computed *before* the update: they are the progressive-validation scores
   (a model with active dropout is scored by a separate eval-mode forward instead);
4. ``loss.update`` learns from the batch after the step (e.g. auxiliary heads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lt4rec.config import AppConfig, ModelConfig
from lt4rec.config.loader import build
from lt4rec.data.batch import TASKS, Batch
from lt4rec.data.normalizer import Normalizer
from lt4rec.data.spec import FeatureSpec
from lt4rec.models.blocks import MultiTaskModel
from lt4rec.train.delayed import POLICY_LOSS, FeedbackLoss, StreamMeta, make_feedback_loss
from lt4rec.train.loop import make_optimizer, train_step
from lt4rec.train.optim import TaskMaskedAdam
from streamer.worker.encode import ExampleEncoder


class WorkerError(RuntimeError):
    """The worker cannot start or continue (clear message, no traceback at the CLI)."""


def make_loss(cfg: AppConfig) -> FeedbackLoss:
    """The configured delayed-feedback loss; refuses one that does not match the policy.

    This is the one place a loss is built: a loss that needs more at start (e.g. ES-DFM's
    pre-trained heads) gets its arguments here.
    """
    name = cfg.worker.loss if cfg.worker.loss != "auto" else POLICY_LOSS[cfg.joiner.policy]
    try:
        loss = make_feedback_loss(name)
    except ValueError as exc:
        raise WorkerError(f"worker.loss: {exc}") from exc
    if loss.policy != cfg.joiner.policy:
        raise WorkerError(
            f"worker.loss {name!r} expects examples of joiner.policy {loss.policy!r}, but "
            f"joiner.policy is {cfg.joiner.policy!r}: refusing to train on the wrong labels"
        )
    return loss


@dataclass
class StepResult:
    """One step: losses, progressive scores ``{task: (p, y)}``, rows trained per task."""

    losses: dict[str, float]
    scores: dict[str, tuple[torch.Tensor, torch.Tensor]]  # probabilities [n], labels [n]
    trained: dict[str, int]


def active_tasks(batch: Batch, weights: dict[str, torch.Tensor] | None, entire: bool) -> list[str]:
    """Tasks with at least one row of non-zero weight (CVR: among its rows)."""
    rows = {"ctr": torch.ones_like(batch.click, dtype=torch.bool)}
    rows["cvr"] = rows["ctr"] if entire else batch.click > 0
    out = []
    for t in TASKS:
        r = rows[t]
        if weights is not None and t in weights:
            r = r & (weights[t] != 0)
        if bool(r.any()):
            out.append(t)
    return out


def _has_dropout(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())


@dataclass
class ModelHolder:
    """Model + optimiser + feedback loss + encoder + version (see module docstring)."""

    model: MultiTaskModel
    optimizer: TaskMaskedAdam
    loss: FeedbackLoss
    encoder: ExampleEncoder
    model_config: ModelConfig
    version: int | None  # the registry version these weights were loaded from / saved as
    cvr_loss: str = "clicked"
    cvr_weight: float = 1.0
    embedding_l2: float = 0.0  # [train] like offline training (lt4rec.train.loop.step_options)

    @classmethod
    def from_checkpoint(cls, ckpt: Any, cfg: AppConfig, version: int | None) -> ModelHolder:
        """Rebuild from a :class:`checkpoints.Checkpoint`; refuses one that is no trained model."""
        if ckpt.spec is None or ckpt.normalizer is None:
            raise WorkerError(
                "the checkpoint has no feature spec / normalizer: not a trained model "
                "(write one with `lt4rec fit --checkpoint` or the worker itself)"
            )
        model_cfg = build(ModelConfig, ckpt.model_config, "model")
        model = ckpt.build_model()
        assert isinstance(model, MultiTaskModel)
        opt = make_optimizer(model, cfg.worker.lr, cfg.worker.weight_decay)
        if ckpt.optimizer is not None:
            opt.load_state_dict(ckpt.optimizer)
        encoder = ExampleEncoder(
            FeatureSpec.from_dict(ckpt.spec), Normalizer.from_dict(ckpt.normalizer), model.schema
        )
        return cls(
            model, opt, make_loss(cfg), encoder, model_cfg, version,
            cfg.train.cvr_loss, cfg.train.cvr_weight, cfg.train.embedding_l2,
        )  # fmt: skip

    @property
    def entire_space(self) -> bool:
        return bool(self.model.entire_space) or self.cvr_loss == "entire_space"

    def step(self, batch: Batch, meta: StreamMeta) -> StepResult:
        """Score, then one masked optimiser step, then the loss's own update."""
        weights = self.loss.weights(self.model, batch, meta)
        tasks = active_tasks(batch, weights, self.entire_space)
        clicked = batch.click > 0
        logits: dict[str, torch.Tensor] = {}
        cvr_all_rows = self.entire_space  # train_step's CVR logits cover every row
        if _has_dropout(self.model):  # train-mode logits would not be the served scores
            self.model.eval()
            with torch.no_grad():
                logits = self.model(batch)
            cvr_all_rows = True
        losses: dict[str, float] = {}
        if tasks:
            out: dict[str, torch.Tensor] = {}
            losses = train_step(
                self.model, batch, self.optimizer, cvr_loss=self.cvr_loss,
                cvr_weight=self.cvr_weight, embedding_l2=self.embedding_l2, tasks=tasks,
                weights=weights, logits_out=out,
            )  # fmt: skip
            logits = logits or out
        self.loss.update(self.model, batch, meta)
        scores: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if "ctr" in tasks and "ctr" in logits:
            scores["ctr"] = (torch.sigmoid(logits["ctr"]), batch.click)
        if "cvr" in tasks and "cvr" in logits:
            z = logits["cvr"][clicked] if cvr_all_rows else logits["cvr"]  # CVR: clicked rows
            scores["cvr"] = (torch.sigmoid(z), batch.conversion[clicked])
        trained = {"ctr": len(batch) if "ctr" in tasks else 0}
        trained["cvr"] = int(clicked.sum()) if "cvr" in tasks else 0
        return StepResult(losses, scores, trained)
