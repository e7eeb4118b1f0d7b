"""Synthetic masked MLPs: the inputs of the sparse-inference tests and benchmarks."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

from lt4rec.sparse.layers import MaskedLayer


def random_masked_mlp(
    dims: Sequence[int],
    densities: Sequence[float],
    seed: int = 0,
    bias_scale: float = 0.5,
) -> list[MaskedLayer]:
    """Random MLP ``dims[0] -> ... -> dims[-1]`` (ReLU hidden, linear last), random masks.

    Each mask entry survives with probability ``densities[i]`` (0 gives a fully dead layer).
    Weights are initialised like ``nn.Linear`` so outputs stay O(1); pruned entries keep
    arbitrary (nonzero) values, as in a trained model.
    """
    if len(densities) != len(dims) - 1:
        raise ValueError(f"{len(dims)} widths need {len(dims) - 1} densities, got {len(densities)}")
    gen = torch.Generator().manual_seed(seed)
    layers = []
    for i, density in enumerate(densities):
        fan_in, fan_out = dims[i], dims[i + 1]
        bound = 1.0 / fan_in**0.5
        weight = (torch.rand(fan_out, fan_in, generator=gen) * 2 - 1) * bound
        bias = (torch.rand(fan_out, generator=gen) * 2 - 1) * bias_scale
        mask = torch.rand(fan_out, fan_in, generator=gen) < density
        last = i == len(densities) - 1
        layers.append(MaskedLayer(weight, bias, mask, "none" if last else "relu"))
    return layers


def magnitude_pruned_mlp(
    dims: Sequence[int], density: float, *, seed: int = 0, scope: str = "layer"
) -> list[MaskedLayer]:
    """An ``nn.Linear``-initialised MLP ``dims[0] -> ... -> dims[-1]`` pruned by magnitude.

    ``scope="layer"`` keeps the ``density`` largest |w| of every layer; ``"global"`` ranks all
    weights together (layers with small init weights, i.e. large fan-in, lose more).
    """
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density}")
    gen = torch.Generator().manual_seed(seed)
    weights, biases = [], []
    for fan_in, fan_out in itertools.pairwise(dims):
        bound = 1.0 / fan_in**0.5
        weights.append((torch.rand(fan_out, fan_in, generator=gen) * 2 - 1) * bound)
        biases.append((torch.rand(fan_out, generator=gen) * 2 - 1) * bound)
    if scope == "global":
        flat = torch.cat([w.abs().flatten() for w in weights])
        cut = torch.kthvalue(flat, max(1, round(flat.numel() * (1 - density)))).values
        masks = [w.abs() > cut for w in weights]
    elif scope == "layer":
        masks = []
        for w in weights:
            keep = max(1, round(w.numel() * density))
            idx = torch.topk(w.abs().flatten(), keep).indices
            m = torch.zeros(w.numel(), dtype=torch.bool)
            m[idx] = True
            masks.append(m.view_as(w))
    else:
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    last = len(weights) - 1
    return [
        MaskedLayer(w, b, m, "none" if i == last else "relu")
        for i, (w, b, m) in enumerate(zip(weights, biases, masks, strict=True))
    ]
