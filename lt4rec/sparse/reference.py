"""The dense masked network a task's subnetwork denotes: the baseline of sparse inference.

:class:`DenseMaskedNet` computes ``act(x @ (weight * mask).T + bias)`` layer by layer, the way
the trained sparse-sharing model does, keeping the full dense weight and the mask. It defines
the predictions :class:`~lt4rec.sparse.export.SparseTaskNet` must reproduce, and is the
"dense" side of the latency / memory benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lt4rec.sparse.compaction import validate_chain
from lt4rec.sparse.layers import MaskedLayer


class DenseMaskedNet(nn.Module):
    """Dense MLP with masks applied at every forward; ``forward(x [B, in]) -> [B]``.

    ``premasked=True`` multiplies the masks in once at construction (a plain dense MLP with
    zeros: the fastest dense baseline, but it no longer needs the masks).
    """

    def __init__(self, layers: Sequence[MaskedLayer], *, premasked: bool = False) -> None:
        super().__init__()
        validate_chain(layers)
        self.premasked = premasked
        self.activations = tuple(ly.activation for ly in layers)
        self.out_features = int(layers[-1].weight.shape[0])
        for i, ly in enumerate(layers):
            w = ly.weight.detach().float()
            if premasked:
                w = torch.where(ly.mask, w, torch.zeros((), dtype=w.dtype, device=w.device))
            self.register_buffer(f"weight{i}", w.clone())  # [out, in]
            self.register_buffer(f"bias{i}", ly.bias.detach().float().clone())  # [out]
            if not premasked:
                self.register_buffer(f"mask{i}", ly.mask.clone())  # [out, in] bool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, in] -> logits [B] (``[B, out]`` when the last layer is wider than 1)."""
        h = x
        for i, act in enumerate(self.activations):
            w: torch.Tensor = getattr(self, f"weight{i}")
            if not self.premasked:
                w = w * getattr(self, f"mask{i}")
            h = nn.functional.linear(h, w, getattr(self, f"bias{i}"))  # [B, out_i]
            if act == "relu":
                h = torch.relu(h)
        return h[:, 0] if self.out_features == 1 else h

    def param_bytes(self) -> int:
        """Bytes of the stored tensors (weights, biases and, unless premasked, bool masks)."""
        return sum(b.numel() * b.element_size() for b in self.buffers())
