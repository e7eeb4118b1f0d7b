"""Dense multi-task baselines: ``single``, ``shared_bottom`` and ``esmm``."""

from __future__ import annotations

import torch
from torch import nn

from lt4rec.config.model import ModelConfig
from lt4rec.data.batch import TASKS, Batch, FieldSchema
from lt4rec.models.blocks import MultiTaskModel, embedding_block, mlp, out_width


class SingleTask(MultiTaskModel):
    """One fully independent network (own embeddings, bottom and tower) per task."""

    name = "single"

    def __init__(self, cfg: ModelConfig, schema: FieldSchema) -> None:
        super().__init__(cfg, schema)
        blocks = {t: embedding_block(cfg, schema) for t in TASKS}
        self.embeddings = nn.ModuleDict(blocks)
        d = blocks[TASKS[0]].out_dim
        widths = (*cfg.bottom, *cfg.tower)
        self.towers = nn.ModuleDict({t: mlp(d, widths, cfg.dropout, out_dim=1) for t in TASKS})

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {t: self.towers[t](self.embeddings[t](batch)).squeeze(-1) for t in TASKS}


class SharedBottom(MultiTaskModel):
    """Hard parameter sharing: shared embeddings and bottom MLP, one tower per task."""

    name = "shared_bottom"

    def __init__(self, cfg: ModelConfig, schema: FieldSchema) -> None:
        super().__init__(cfg, schema)
        self.embeddings = embedding_block(cfg, schema)
        self.bottom = mlp(self.embeddings.out_dim, cfg.bottom, cfg.dropout)
        d = out_width(self.embeddings.out_dim, cfg.bottom)
        self.towers = nn.ModuleDict({t: mlp(d, cfg.tower, cfg.dropout, out_dim=1) for t in TASKS})

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        h = self.bottom(self.embeddings(batch))  # [B, bottom[-1]]
        return {t: self.towers[t](h).squeeze(-1) for t in TASKS}


class ESMM(MultiTaskModel):
    """Entire-space multi-task model (Ma et al. 2018): shared embeddings, one MLP per task.

    The CVR head is always trained through CTCVR = pCTR * pCVR on all impressions.
    """

    name = "esmm"
    cvr_objective = "entire_space"

    def __init__(self, cfg: ModelConfig, schema: FieldSchema) -> None:
        super().__init__(cfg, schema)
        self.embeddings = embedding_block(cfg, schema)
        d = self.embeddings.out_dim
        widths = (*cfg.bottom, *cfg.tower)
        self.towers = nn.ModuleDict({t: mlp(d, widths, cfg.dropout, out_dim=1) for t in TASKS})

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        e = self.embeddings(batch)  # [B, in_dim]
        return {t: self.towers[t](e).squeeze(-1) for t in TASKS}
