"""``check_model``: the contract every registered model must pass (river ``check_estimator`` style).

1. ``forward`` returns finite ``{"ctr", "cvr"}`` logits of shape ``[B]``;
2. one optimisation step on random multi-task data keeps losses and weights finite and
   changes the parameters;
3. masks (if any) stay 0/1, weights pruned for every task do not move, and pruning the
   model's trained weights never revives a pruned weight (:func:`check_prune`);
4. a save / load round trip gives identical outputs: by default a rebuild from the config
   plus ``load_state_dict``; the checkpoint layer's tests pass ``roundtrip`` to run the same
   check through the checkpoint file format (the core never imports :mod:`checkpoints`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import cast

import torch
from torch import nn

from lt4rec.config.model import ModelConfig, ModelName, PruneConfig
from lt4rec.data.batch import TASKS, FieldSchema
from lt4rec.models import build_model
from lt4rec.models.blocks import MultiTaskModel
from lt4rec.pruning.mask import Mask
from lt4rec.pruning.prune import prune
from lt4rec.testing.data import random_batch, random_schema
from lt4rec.train.loop import make_optimizer, train_step


def _fail(name: str, what: str) -> AssertionError:
    return AssertionError(f"model {name!r}: {what}")


def check_prune(weights: Mapping[str, torch.Tensor], mask: Mask, hparams: PruneConfig) -> Mask:
    """One :func:`prune` round must return 0/1 masks that only remove weights."""
    new = prune(weights, mask, hparams)
    if list(new) != list(mask):
        raise AssertionError(f"prune changed the layer names: {list(new)} != {list(mask)}")
    for k in mask:
        if not bool(((new[k] == 0) | (new[k] == 1)).all()):
            raise AssertionError(f"prune returned a non-0/1 mask for {k}")
        if bool((new[k] > mask[k]).any()):
            raise AssertionError(f"prune revived a pruned weight of {k}")
    return new


# (trained model, its config, optimiser state) -> a rebuilt model that must predict the same
RoundTrip = Callable[[MultiTaskModel, ModelConfig, dict[str, torch.Tensor]], nn.Module]


def state_dict_roundtrip(
    model: MultiTaskModel, cfg: ModelConfig, _optimizer: dict[str, torch.Tensor]
) -> nn.Module:
    """A fresh model built from ``cfg`` with ``model``'s state dict (mask buffers included)."""
    clone = build_model(cfg, model.schema)
    clone.load_state_dict(model.state_dict())
    return clone


def check_model(
    name: str,
    schema: FieldSchema | None = None,
    cfg: ModelConfig | None = None,
    seed: int = 0,
    roundtrip: RoundTrip = state_dict_roundtrip,
    cvr_loss: str = "clicked",
) -> None:
    """Raise ``AssertionError`` naming the model and the broken property, else return.

    ``cvr_loss`` is the ``train.cvr_loss`` of the optimisation step (a model's own CVR
    objective wins over it, as in training).
    """
    schema = schema or random_schema()
    cfg = cfg or ModelConfig(
        name=cast(ModelName, name),
        embedding_dim=4,
        bottom=(16, 8),
        tower=(4,),
        experts=2,
        expert_hidden=(8,),
    )
    torch.manual_seed(seed)
    model = build_model(cfg, schema)
    g = torch.Generator().manual_seed(seed)
    batch = random_batch(schema, 64, g)

    model.eval()
    with torch.no_grad():
        out = model(batch)
    if set(out) != set(TASKS):
        raise _fail(name, f"forward returned keys {sorted(out)}, expected {list(TASKS)}")
    for t, v in out.items():
        if v.shape != (64,) or not torch.isfinite(v).all():
            raise _fail(name, f"{t} logits have shape {tuple(v.shape)} or non-finite values")

    masks = model.masks()
    if masks:  # prune some weights for every task so that "never moves" is tested
        gm = torch.Generator().manual_seed(seed + 1)
        for t in TASKS:
            new = {
                k: (torch.rand(m.shape, generator=gm) < 0.5).float() for k, m in masks[t].items()
            }
            model.set_masks(t, new)  # type: ignore[operator]
        masks = model.masks()
    pruned_all = {
        k: torch.stack([masks[t][k] for t in TASKS]).amax(0) == 0
        for k in (masks[TASKS[0]] if masks else {})
    }
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = make_optimizer(model, lr=1e-2)
    losses = train_step(model, batch, opt, cvr_loss=cvr_loss)
    if not all(torch.isfinite(torch.tensor(v)) for v in losses.values()):
        raise _fail(name, f"non-finite loss after one step: {losses}")
    after = dict(model.named_parameters())
    if any(not torch.isfinite(p).all() for p in after.values()):
        raise _fail(name, "a parameter became NaN/inf after one step")
    if all(torch.equal(before[k], after[k]) for k in before):
        raise _fail(name, "one optimisation step changed no parameter")
    for t, layers in model.masks().items():
        for k, m in layers.items():
            if not bool(((m == 0) | (m == 1)).all()):
                raise _fail(name, f"mask {t}/{k} is not 0/1 after a step")
            if not torch.equal(after[k].detach()[pruned_all[k]], before[k][pruned_all[k]]):
                raise _fail(name, f"weights of {k} pruned for every task moved")

    for layers in model.masks().values():
        check_prune({k: after[k] for k in layers}, Mask(layers), PruneConfig(rate=0.5))

    clone = roundtrip(model, cfg, opt.state_dict())
    model.eval()
    clone.eval()
    with torch.no_grad():
        a, b = model(batch), clone(batch)
    for t in TASKS:
        if not torch.equal(a[t], b[t]):
            raise _fail(name, f"{t} outputs differ after a checkpoint round trip")
