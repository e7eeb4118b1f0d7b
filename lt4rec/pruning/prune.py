"""Magnitude pruning as a pure function: ``prune(weights, mask, hparams) -> Mask``.

Only weights still kept by ``mask`` compete; pruned entries stay pruned (never revived).
``scope="layer"`` removes ``rate`` of each layer's remaining weights; ``scope="global"``
removes ``rate`` of all remaining hidden-layer weights by one magnitude threshold. The
output layer (last non-embedding name in ``mask``, unless ``has_output=False``: a model whose
output layers are per task and unmasked) is always pruned on its own at
``rate * output_rate_factor``. Names starting with ``embeddings.`` are pruned only when
``prune_embeddings`` is set (layer-wise), otherwise their masks are returned unchanged.
Ties are broken deterministically by position (stable sort).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from lt4rec.config.model import PruneConfig
from lt4rec.pruning.mask import Mask

EMBEDDING_PREFIX = "embeddings."


def _smallest(values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` smallest entries of 1-D ``values`` (stable on ties)."""
    if k <= 0:
        return torch.zeros(0, dtype=torch.long)
    return torch.sort(values, stable=True).indices[:k]


def _prune_layer(w: torch.Tensor, m: torch.Tensor, rate: float) -> torch.Tensor:
    flat_m = m.flatten().clone()
    kept = flat_m.nonzero().squeeze(1)  # [K]
    k = round(rate * kept.numel())
    drop = kept[_smallest(w.flatten().abs()[kept], k)]
    flat_m[drop] = 0.0
    return flat_m.view_as(m)


def prune(
    weights: Mapping[str, torch.Tensor],
    mask: Mask,
    hparams: PruneConfig,
    has_output: bool = True,
) -> Mask:
    """One round of magnitude pruning of ``weights`` restricted to ``mask``."""
    mask.check_shapes(weights)
    w = {n: weights[n].detach().float().cpu() for n in mask}
    out: dict[str, torch.Tensor] = {n: mask[n].clone() for n in mask}
    mlp = [n for n in mask if not n.startswith(EMBEDDING_PREFIX)]
    emb = [n for n in mask if n.startswith(EMBEDDING_PREFIX)]
    output = mlp[-1:] if mlp and has_output else []
    hidden = mlp[: len(mlp) - len(output)]
    for n in output:
        out[n] = _prune_layer(w[n], mask[n], hparams.rate * hparams.output_rate_factor)
    if hparams.prune_embeddings:
        for n in emb:
            out[n] = _prune_layer(w[n], mask[n], hparams.rate)
    if hparams.scope == "layer":
        for n in hidden:
            out[n] = _prune_layer(w[n], mask[n], hparams.rate)
    elif hidden:
        kept_idx = [mask[n].flatten().nonzero().squeeze(1) for n in hidden]
        vals = torch.cat([w[n].flatten().abs()[i] for n, i in zip(hidden, kept_idx, strict=True)])
        owner = torch.cat(
            [torch.full((i.numel(),), j, dtype=torch.long) for j, i in enumerate(kept_idx)]
        )
        pos = torch.cat(kept_idx)
        drop = _smallest(vals, round(hparams.rate * vals.numel()))
        for j, n in enumerate(hidden):
            d = pos[drop[owner[drop] == j]]
            flat = out[n].flatten()
            flat[d] = 0.0
            out[n] = flat.view_as(mask[n])
    return Mask(out)
