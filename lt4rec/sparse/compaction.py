"""Compaction of a masked MLP: drop every neuron and input that cannot change the output.

A task's subnetwork (``list[MaskedLayer]``) keeps the dense shapes of the shared model, but
its masks often leave whole neurons without inputs (their output is the constant
``act(bias)``) or without any surviving outgoing weight (their output is never read). This
module removes both kinds, iteratively and exactly:

* **forward pass (constants)**: a neuron whose surviving inputs are all constant is itself
  constant; its value ``act(W[j, const] @ c + b[j])`` is folded into the next layer's bias,
  so a dead neuron with a nonzero bias still contributes ``relu(bias)`` downstream;
* **backward pass (liveness)**: a hidden neuron is kept only if a kept neuron of the next
  layer reads it through a surviving weight; network inputs nobody reads are dropped.

The result is a :class:`CompactPlan` of small dense matrices that computes exactly the same
function as the masked network (up to float summation order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lt4rec.sparse.layers import MaskedLayer

Activation = str  # "relu" | "none" (as in MaskedLayer)


@dataclass(frozen=True)
class CompactLayer:
    """One surviving layer ``y = act(x @ weight.T + bias)``; pruned entries are exact zeros."""

    weight: torch.Tensor  # [out', in'] float32, zero where masked out
    bias: torch.Tensor  # [out'] float32, with constant upstream neurons folded in
    activation: Activation

    @property
    def nnz(self) -> int:
        return int(torch.count_nonzero(self.weight))

    @property
    def density(self) -> float:
        numel = self.weight.numel()
        return self.nnz / numel if numel else 0.0


@dataclass(frozen=True)
class CompactPlan:
    """The compacted network.

    ``layers`` is empty when the output does not depend on the input at all; the network is
    then the constant ``constant`` (shape [out]) for every example.
    """

    in_features: int  # width of the original input x [B, in]
    input_index: torch.Tensor  # [in'] int64, the input columns that are read (sorted)
    layers: tuple[CompactLayer, ...]
    constant: torch.Tensor  # [out] float32, the output when ``layers`` is empty
    out_features: int
    original_shapes: tuple[tuple[int, int], ...]  # (out, in) of every original layer


def _act(x: torch.Tensor, activation: Activation) -> torch.Tensor:
    if activation == "relu":
        return torch.relu(x)
    if activation == "none":
        return x
    raise ValueError(f"unknown activation {activation!r} (expected 'relu' or 'none')")


def validate_chain(layers: Sequence[MaskedLayer]) -> None:
    """Raise ``ValueError`` naming the layer when consecutive shapes do not chain."""
    if not layers:
        raise ValueError("a task subnetwork needs at least one layer")
    for i, layer in enumerate(layers):
        if layer.activation not in ("relu", "none"):
            raise ValueError(f"layer {i}: unknown activation {layer.activation!r}")
        if i and layer.weight.shape[1] != layers[i - 1].weight.shape[0]:
            raise ValueError(
                f"layer {i} expects {layer.weight.shape[1]} inputs but layer {i - 1} has "
                f"{layers[i - 1].weight.shape[0]} outputs"
            )


def compact(layers: Sequence[MaskedLayer]) -> CompactPlan:
    """Remove dead and unused neurons (and unread inputs) from a masked MLP, exactly."""
    validate_chain(layers)
    n = len(layers)
    # Effective structure: a weight survives iff masked in and nonzero (a zero adds nothing).
    eff = [(ly.mask & (ly.weight != 0)).cpu() for ly in layers]  # [out, in] bool
    w64 = [
        torch.where(e, ly.weight.detach().cpu().double(), 0.0)
        for e, ly in zip(eff, layers, strict=True)
    ]  # [out, in] float64, exact zeros where pruned

    # Forward pass: which outputs are constant, their values, and the folded biases.
    const_in = torch.zeros(layers[0].weight.shape[1], dtype=torch.bool)  # inputs vary
    cval_in = torch.zeros(layers[0].weight.shape[1], dtype=torch.float64)
    const_cols: list[torch.Tensor] = []  # [in_i] bool, constant inputs of layer i
    folded: list[torch.Tensor] = []  # [out_i] float64 bias incl. constant inputs
    row_const: list[torch.Tensor] = []  # [out_i] bool
    for i, ly in enumerate(layers):
        pre = w64[i] @ cval_in + ly.bias.detach().cpu().double()  # [out_i]
        rc = ~(eff[i] & ~const_in[None, :]).any(dim=1)  # no edge from a varying input
        const_cols.append(const_in)
        folded.append(pre)
        row_const.append(rc)
        const_in = rc
        cval_in = torch.where(rc, _act(pre, ly.activation), 0.0)

    out_features = layers[-1].weight.shape[0]
    shapes = tuple((int(ly.weight.shape[0]), int(ly.weight.shape[1])) for ly in layers)
    # Backward pass: keep rows read downstream (every output row of the last layer).
    keep_rows = torch.ones(out_features, dtype=torch.bool)
    kept: list[tuple[torch.Tensor, torch.Tensor]] = []  # (rows, cols) per layer, reversed
    for i in range(n - 1, -1, -1):
        cols = (eff[i][keep_rows] & ~const_cols[i][None, :]).any(dim=0)  # [in_i] bool
        kept.append((keep_rows, cols))
        keep_rows = cols  # a hidden neuron is kept iff read; read columns are never constant
    kept.reverse()

    input_cols = kept[0][1]
    if not bool(kept[-1][1].any()):  # the output does not depend on x
        constant = cval_in.float() if out_features else torch.zeros(0)
        return CompactPlan(
            in_features=layers[0].weight.shape[1],
            input_index=torch.zeros(0, dtype=torch.int64),
            layers=(),
            constant=constant,
            out_features=out_features,
            original_shapes=shapes,
        )
    compact_layers = []
    for i, (rows, cols) in enumerate(kept):
        w = w64[i][rows][:, cols].float()  # [out', in']
        compact_layers.append(
            CompactLayer(weight=w, bias=folded[i][rows].float(), activation=layers[i].activation)
        )
    return CompactPlan(
        in_features=layers[0].weight.shape[1],
        input_index=torch.nonzero(input_cols).flatten(),
        layers=tuple(compact_layers),
        constant=cval_in.float(),
        out_features=out_features,
        original_shapes=shapes,
    )
