"""LT4REC sparse sharing: every task is a masked view ``W ⊙ M_task`` of ONE base network.

The base MLP has widths ``bottom + tower + (1,)`` after the shared embedding block. Each
layer keeps one weight matrix shared by all tasks, one 0/1 mask **buffer** per task
(``layers.{i}.mask_{task}``) and one bias per task (biases are never pruned; keeping them
per task means no parameter is silently shared outside the masks). Where two tasks' masks
overlap the weight is shared; elsewhere it is private to one task or pruned for all.

With ``model.output_layer = "per_task"`` the output layer is not part of the shared base:
each task has its own unpruned ``head.weight.{task}`` [1, tower[-1]] (Sun et al. 2020, and
the LT4REC authors' code), initialised identically for every task.

A task's *own* parameters (``own_parameters``: its biases and head) are never shared; the
optimiser gives them that task's state.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from lt4rec.config.model import ModelConfig
from lt4rec.data.batch import TASKS, Batch, FieldSchema
from lt4rec.models.blocks import MultiTaskModel, embedding_block
from lt4rec.sparse.layers import MaskedLayer


class SharedMaskedLinear(nn.Module):
    """``y_t = x @ (W ⊙ M_t).T + b_t`` for each task t; W [out, in] is shared."""

    bias: nn.ParameterDict  # task -> [out]

    def __init__(self, in_dim: int, out_dim: int, tasks: tuple[str, ...]) -> None:
        super().__init__()
        self.tasks = tasks
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))  # [out, in]
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.ParameterDict({t: nn.Parameter(torch.zeros(out_dim)) for t in tasks})
        for t in tasks:
            self.register_buffer(f"mask_{t}", torch.ones(out_dim, in_dim))

    def mask(self, task: str) -> torch.Tensor:
        """The 0/1 float mask [out, in] of ``task``."""
        m: torch.Tensor = getattr(self, f"mask_{task}")
        return m

    def masked_weight(self, task: str) -> torch.Tensor:
        return self.weight * self.mask(task)  # [out, in]


class TaskLinear(nn.Module):
    """``y_t = x @ W_t.T + b_t`` with an own, unmasked weight per task (same init for all)."""

    def __init__(self, in_dim: int, out_dim: int, tasks: tuple[str, ...]) -> None:
        super().__init__()
        w = torch.empty(out_dim, in_dim)  # [out, in]
        nn.init.kaiming_uniform_(w, a=math.sqrt(5))
        self.weight = nn.ParameterDict({t: nn.Parameter(w.clone()) for t in tasks})
        self.bias = nn.ParameterDict({t: nn.Parameter(torch.zeros(out_dim)) for t in tasks})


class SparseSharing(MultiTaskModel):
    """Embeddings -> per-task masked views of one base MLP -> one logit per task."""

    name = "sparse_sharing"

    def __init__(self, cfg: ModelConfig, schema: FieldSchema) -> None:
        super().__init__(cfg, schema)
        self.embeddings = embedding_block(cfg, schema)
        own_head = cfg.output_layer == "per_task"
        dims = (self.embeddings.out_dim, *cfg.bottom, *cfg.tower, *(() if own_head else (1,)))
        self.layers = nn.ModuleList(
            [SharedMaskedLinear(dims[i], dims[i + 1], TASKS) for i in range(len(dims) - 1)]
        )
        self.head = TaskLinear(dims[-1], 1, TASKS) if own_head else None
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()

    def masked_layers(self) -> list[SharedMaskedLinear]:
        """The base MLP's layers, input layer first."""
        return [cast(SharedMaskedLinear, m) for m in self.layers]

    # -- names -------------------------------------------------------------------------
    def layer_names(self) -> list[str]:
        """Names of the prunable weights (state-dict keys), input layer first."""
        return [f"layers.{i}.weight" for i in range(len(self.layers))]

    def masks(self) -> dict[str, dict[str, torch.Tensor]]:
        return {
            t: {f"layers.{i}.weight": lay.mask(t) for i, lay in enumerate(self.masked_layers())}
            for t in TASKS
        }

    @torch.no_grad()
    def set_masks(self, task: str, masks: dict[str, torch.Tensor]) -> None:
        """Install ``task``'s 0/1 masks (by weight name, as from :meth:`masks`)."""
        for i, lay in enumerate(self.masked_layers()):
            name = f"layers.{i}.weight"
            if name not in masks:
                raise KeyError(f"mask for {name} missing")
            m = masks[name]
            if m.shape != lay.weight.shape:
                raise ValueError(
                    f"mask {name}: shape {tuple(m.shape)} != {tuple(lay.weight.shape)}"
                )
            lay.mask(task).copy_(m.to(lay.weight.dtype))

    # -- forward -----------------------------------------------------------------------
    def embed(self, batch: Batch) -> torch.Tensor:
        """The embedding block output ``[B, in_dim]`` every task's MLP starts from."""
        out: torch.Tensor = self.embeddings(batch)
        return out

    def task_weights(self, task: str) -> list[torch.Tensor]:
        """``W_i ⊙ M_task,i`` for every layer (non-leaf tensors; see the trainer)."""
        return [lay.masked_weight(task) for lay in self.masked_layers()]

    def mlp_forward(
        self, x: torch.Tensor, task: str, weights: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Task ``task``'s MLP on embeddings ``x`` [B, in_dim] -> logits [B]."""
        ws = self.task_weights(task) if weights is None else weights
        h = x
        last = len(self.layers) - (0 if self.head is not None else 1)
        for i, (lay, w) in enumerate(zip(self.masked_layers(), ws, strict=True)):
            h = F.linear(h, w, lay.bias[task])
            if i < last:
                h = self.dropout(torch.relu(h))
        if self.head is not None:
            h = F.linear(h, self.head.weight[task], self.head.bias[task])  # [B, 1]
        return h.squeeze(-1)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.embed(batch)  # [B, in_dim]
        return {t: self.mlp_forward(x, t) for t in TASKS}

    # -- export ------------------------------------------------------------------------
    @torch.no_grad()
    def export_task_layers(self, task: str) -> list[MaskedLayer]:
        """``task``'s MLP after the embeddings as :class:`MaskedLayer` (bool masks)."""
        last = len(self.layers) - (0 if self.head is not None else 1)
        out = [
            MaskedLayer(
                weight=lay.weight.detach().clone(),
                bias=lay.bias[task].detach().clone(),
                mask=lay.mask(task).bool(),
                activation="none" if i == last else "relu",
            )
            for i, lay in enumerate(self.masked_layers())
        ]
        if self.head is not None:
            w = self.head.weight[task].detach().clone()  # [1, in]
            b = self.head.bias[task].detach().clone()
            out.append(MaskedLayer(w, b, torch.ones_like(w, dtype=torch.bool), "none"))
        return out
