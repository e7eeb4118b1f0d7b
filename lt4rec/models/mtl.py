"""Soft-sharing multi-task baselines: ``mmoe``, ``ple`` (one CGC level) and ``cross_stitch``."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from lt4rec.config.model import ModelConfig
from lt4rec.data.batch import TASKS, Batch, FieldSchema
from lt4rec.models.blocks import MultiTaskModel, embedding_block, mlp, out_width


class MMoE(MultiTaskModel):
    """Multi-gate mixture of experts (Ma et al. 2018): softmax gate per task over experts."""

    name = "mmoe"

    def __init__(self, cfg: ModelConfig, schema: FieldSchema) -> None:
        super().__init__(cfg, schema)
        self.embeddings = embedding_block(cfg, schema)
        d = self.embeddings.out_dim
        self.bottom = nn.ModuleList(
            [mlp(d, cfg.expert_hidden, cfg.dropout) for _ in range(cfg.experts)]
        )
        self.gates = nn.ModuleDict({t: nn.Linear(d, cfg.experts) for t in TASKS})
        e = out_width(d, cfg.expert_hidden)
        self.towers = nn.ModuleDict({t: mlp(e, cfg.tower, cfg.dropout, out_dim=1) for t in TASKS})

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.embeddings(batch)  # [B, in_dim]
        experts = torch.stack([f(x) for f in self.bottom], dim=1)  # [B, E, e]
        out = {}
        for t in TASKS:
            g = torch.softmax(self.gates[t](x), dim=-1).unsqueeze(-1)  # [B, E, 1]
            out[t] = self.towers[t]((g * experts).sum(1)).squeeze(-1)
        return out


class PLE(MultiTaskModel):
    """Progressive layered extraction (Tang et al. 2020), one customised-gate-control level.

    ``experts`` shared experts plus ``experts`` experts private to each task; each task's
    gate mixes its own and the shared experts.
    """

    name = "ple"

    def __init__(self, cfg: ModelConfig, schema: FieldSchema) -> None:
        super().__init__(cfg, schema)
        self.embeddings = embedding_block(cfg, schema)
        d = self.embeddings.out_dim
        k = cfg.experts

        def group() -> nn.ModuleList:
            return nn.ModuleList([mlp(d, cfg.expert_hidden, cfg.dropout) for _ in range(k)])

        self.bottom = nn.ModuleDict({"shared": group(), **{t: group() for t in TASKS}})
        self.gates = nn.ModuleDict({t: nn.Linear(d, 2 * k) for t in TASKS})
        e = out_width(d, cfg.expert_hidden)
        self.towers = nn.ModuleDict({t: mlp(e, cfg.tower, cfg.dropout, out_dim=1) for t in TASKS})

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.embeddings(batch)  # [B, in_dim]
        shared = [f(x) for f in cast(nn.ModuleList, self.bottom["shared"])]
        out = {}
        for t in TASKS:
            experts = torch.stack(
                [f(x) for f in cast(nn.ModuleList, self.bottom[t])] + shared, dim=1
            )  # [B, 2k, e]
            g = torch.softmax(self.gates[t](x), dim=-1).unsqueeze(-1)  # [B, 2k, 1]
            out[t] = self.towers[t]((g * experts).sum(1)).squeeze(-1)
        return out


class CrossStitch(MultiTaskModel):
    """Cross-stitch networks (Misra et al. 2016): one bottom column per task, mixed per layer.

    After every bottom layer the task activations are linearly recombined by a learned 2x2
    matrix initialised near identity (0.9 own / 0.1 other).
    """

    name = "cross_stitch"

    def __init__(self, cfg: ModelConfig, schema: FieldSchema) -> None:
        super().__init__(cfg, schema)
        self.embeddings = embedding_block(cfg, schema)
        n = len(TASKS)
        dims = (self.embeddings.out_dim, *cfg.bottom)
        self.bottom = nn.ModuleList(
            [
                nn.ModuleDict({t: mlp(dims[i], (dims[i + 1],), cfg.dropout) for t in TASKS})
                for i in range(len(cfg.bottom))
            ]
        )
        init = torch.full((n, n), 0.1 / max(n - 1, 1)) + torch.eye(n) * (0.9 - 0.1 / max(n - 1, 1))
        self.stitch = nn.ParameterList([nn.Parameter(init.clone()) for _ in cfg.bottom])
        self.towers = nn.ModuleDict(
            {t: mlp(dims[-1], cfg.tower, cfg.dropout, out_dim=1) for t in TASKS}
        )

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.embeddings(batch)  # [B, in_dim]
        hs = torch.stack([x] * len(TASKS), dim=0)  # [T, B, d]
        for layer, alpha in zip(self.bottom, self.stitch, strict=True):
            cols = cast(nn.ModuleDict, layer)
            hs = torch.stack([cols[t](hs[i]) for i, t in enumerate(TASKS)], dim=0)  # [T, B, h]
            hs = torch.einsum("ij,jbh->ibh", alpha, hs)
        return {t: self.towers[t](hs[i]).squeeze(-1) for i, t in enumerate(TASKS)}
