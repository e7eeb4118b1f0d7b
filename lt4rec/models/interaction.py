"""Feature-interaction blocks between the field embeddings and the MLP (``model.interaction``).

``dot`` is DLRM's pairwise interaction (Naumov et al. 2019), which the LT4REC authors'
reference model also uses: the dot product of every pair of field embeddings (upper
triangle, no diagonal), concatenated after the flat embeddings and dense features. A dot
product of a user-side and an item-side field is exactly the kind of signal a plain MLP on
concatenated embeddings learns slowly (a bilinear term), so the block lifts every model.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

InteractionName = Literal["none", "dot"]


class DotInteraction(nn.Module):
    """``[B, F, d]`` field embeddings -> ``[B, F * (F - 1) / 2]`` pairwise dot products."""

    rows: torch.Tensor  # [P] first field of each pair
    cols: torch.Tensor  # [P] second field of each pair

    def __init__(self, n_fields: int) -> None:
        super().__init__()
        iu = torch.triu_indices(n_fields, n_fields, offset=1)  # [2, P], i < j
        self.register_buffer("rows", iu[0], persistent=False)
        self.register_buffer("cols", iu[1], persistent=False)
        self.out_dim = int(iu.shape[1])

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        gram = torch.bmm(fields, fields.transpose(1, 2))  # [B, F, F]
        return gram[:, self.rows, self.cols]  # [B, P]


def interaction_block(name: str, n_fields: int) -> DotInteraction | None:
    """The block ``name`` over ``n_fields`` fields (``None`` for ``none`` or < 2 fields)."""
    if name == "none" or n_fields < 2:
        return None
    if name == "dot":
        return DotInteraction(n_fields)
    raise ValueError(f"unknown interaction {name!r} (known: none, dot)")
