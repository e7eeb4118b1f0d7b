"""Post-click CVR models used for CTR/CVR today: ``aitm`` (KDD 2021) and ``escm2`` (SIGIR 2022).

Both share the embedding block and give each task its own tower, like ESMM; what differs is
how CVR learns from the click task:

* **AITM** (Xi et al., "Modeling the Sequential Dependence among Audience Multi-step
  Conversions with Multi-task Learning in Targeted Display Advertising"): an *adaptive
  information transfer* module feeds the CTR tower's representation into the CVR tower
  through self-attention over {transferred CTR state, own CVR state}. The model outputs
  P(conversion | click) and trains it through CTCVR = pCTR * pCVR on all rows, so the
  paper's behavioural expectation calibrator (pCTCVR <= pCTR) holds by construction.
* **ESCM²** (Wang et al., "Entire Space Counterfactual Multi-Task Model for Post-Click
  Conversion Rate Estimation"): ESMM's towers trained with CTR loss + an inverse-propensity
  weighted CVR risk over the entire space (propensity = pCTR) + the CTCVR loss (the IPS
  variant; weights in ``model.ips_weight`` / ``model.ctcvr_weight``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lt4rec.config.model import ModelConfig
from lt4rec.data.batch import Batch, FieldSchema
from lt4rec.models.baselines import ESMM
from lt4rec.models.blocks import MultiTaskModel, embedding_block, mlp, out_width


class AdaptiveTransfer(nn.Module):
    """AIT: attention over ``{p, q}`` (transferred previous-task state, own state) -> ``[B, h]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        u = torch.stack([p, q], dim=1)  # [B, 2, h]
        score = (self.query(u) * self.key(u)).sum(-1) * self.scale  # [B, 2]
        w = torch.softmax(score, dim=1).unsqueeze(-1)  # [B, 2, 1]
        out: torch.Tensor = (w * self.value(u)).sum(1)  # [B, h]
        return out


class AITM(MultiTaskModel):
    """Shared embeddings, one tower per task, CTR -> CVR information transfer (AIT)."""

    name = "aitm"
    cvr_objective = "entire_space"

    def __init__(self, cfg: ModelConfig, schema: FieldSchema) -> None:
        super().__init__(cfg, schema)
        self.embeddings = embedding_block(cfg, schema)
        d = self.embeddings.out_dim
        widths = (*cfg.bottom, *cfg.tower)
        h = out_width(d, widths)
        self.towers = nn.ModuleDict({t: mlp(d, widths, cfg.dropout) for t in ("ctr", "cvr")})
        self.transfer = nn.Sequential(nn.Linear(h, h), nn.ReLU())  # CTR state -> CVR input
        self.ait = AdaptiveTransfer(h)
        self.out = nn.ModuleDict({t: nn.Linear(h, 1) for t in ("ctr", "cvr")})

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.embeddings(batch)  # [B, in_dim]
        q_ctr = self.towers["ctr"](x)  # [B, h]
        q_cvr = self.towers["cvr"](x)  # [B, h]
        z = self.ait(self.transfer(q_ctr), q_cvr)  # [B, h]
        return {"ctr": self.out["ctr"](q_ctr).squeeze(-1), "cvr": self.out["cvr"](z).squeeze(-1)}


class ESCM2(ESMM):
    """ESMM's architecture trained with the entire-space counterfactual (IPS) CVR risk."""

    name = "escm2"
    cvr_objective = "counterfactual"
