"""The contract between trained sparse-shared models and sparse inference export.

A model exports each task's MLP (the part after the embedding block) as a list of
:class:`MaskedLayer`; :mod:`lt4rec.sparse.export` turns that list into a compact network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch


@dataclass(frozen=True)
class MaskedLayer:
    """One linear layer ``y = act(x @ (weight * mask).T + bias)`` of a task's subnetwork."""

    weight: torch.Tensor  # [out, in] float32 (dense storage, pruned entries arbitrary)
    bias: torch.Tensor  # [out] float32
    mask: torch.Tensor  # [out, in] bool; False = pruned for this task
    activation: Literal["relu", "none"] = "relu"

    def __post_init__(self) -> None:
        if self.weight.dim() != 2 or self.mask.shape != self.weight.shape:
            raise ValueError(
                f"weight {tuple(self.weight.shape)} and mask {tuple(self.mask.shape)} must be "
                "the same 2-D shape"
            )
        if self.bias.shape != (self.weight.shape[0],):
            raise ValueError(f"bias {tuple(self.bias.shape)} must be ({self.weight.shape[0]},)")
        if self.mask.dtype != torch.bool:
            raise ValueError("mask must be a bool tensor")
