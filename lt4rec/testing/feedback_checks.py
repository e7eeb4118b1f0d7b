"""``check_feedback_loss``: the contract every delayed-feedback loss passes (river style).

1. ``name`` is registered in :data:`~lt4rec.train.delayed.LOSSES` and ``policy`` is a joiner
   policy;
2. on a random micro-batch of the policy's example stream (:func:`random_stream`) the
   weights are ``None`` or ``{task: w[B]}`` for known tasks, finite, >= 0, without a graph;
3. ``final`` rows (true labels) always weigh 1: no method re-weights a known label;
4. ``train_step`` with those weights keeps losses and parameters finite; ``update`` runs;
5. ``state_dict`` holds tensors and a fresh loss loaded with it gives the same weights;
6. a loss without state has an empty ``state_dict`` and refuses a foreign one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lt4rec.config.model import ModelConfig
from lt4rec.data.batch import TASKS, Batch, FieldSchema
from lt4rec.models import build_model
from lt4rec.testing.data import random_batch, random_schema
from lt4rec.train.delayed import KIND_CODES, LOSSES, POLICY_LOSS, FeedbackLoss, StreamMeta
from lt4rec.train.loop import make_optimizer, train_step


def random_stream(
    schema: FieldSchema, n: int, policy: str, generator: torch.Generator | None = None
) -> tuple[Batch, StreamMeta]:
    """``n`` random rows as the joiner's ``policy`` would emit them (kinds match labels)."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    b = random_batch(schema, n, g)
    if policy == "wait_full":
        kind = torch.full((n,), KIND_CODES["final"], dtype=torch.int64)
        return b, StreamMeta(kind, torch.rand(n, generator=g) * 3600)
    u = torch.rand(n, generator=g)
    fresh = u < 0.6
    level2 = u > 0.85
    click, conv = b.click.clone(), b.conversion.clone()
    if policy == "fnw":
        click[fresh], conv[fresh] = 0.0, 0.0
    click[~fresh] = 1.0
    conv[~fresh] = level2[~fresh].float()
    kind = torch.where(fresh, KIND_CODES["fresh"], KIND_CODES["delayed_positive"])
    elapsed = torch.where(fresh, 0.0 if policy == "fnw" else 900.0, 3600.0 * u)
    batch = Batch(b.sparse, b.multi, b.dense, click, conv, b.user)
    return batch, StreamMeta(kind.to(torch.int64), elapsed.float())


def _fail(loss: FeedbackLoss, what: str) -> AssertionError:
    return AssertionError(f"feedback loss {getattr(loss, 'name', loss)!r}: {what}")


def _check_weights(loss: FeedbackLoss, w: dict[str, torch.Tensor] | None, n: int) -> None:
    if w is None:
        return
    if not set(w) <= set(TASKS):
        raise _fail(loss, f"weights for unknown tasks {sorted(set(w) - set(TASKS))}")
    for t, v in w.items():
        if v.shape != (n,) or not v.is_floating_point():
            raise _fail(loss, f"{t} weights have shape {tuple(v.shape)} / dtype {v.dtype}")
        if not torch.isfinite(v).all() or bool((v < 0).any()):
            raise _fail(loss, f"{t} weights are not finite and >= 0")
        if v.requires_grad:
            raise _fail(loss, f"{t} weights carry a graph (they must be stop-gradient)")


def check_feedback_loss(
    make: Callable[[], FeedbackLoss], schema: FieldSchema | None = None, seed: int = 0
) -> None:
    """Raise ``AssertionError`` naming the loss and the broken property, else return."""
    schema = schema or random_schema()
    loss = make()
    if loss.name not in LOSSES:
        raise _fail(loss, f"name {loss.name!r} is not registered in LOSSES")
    if loss.policy not in POLICY_LOSS:
        raise _fail(loss, f"policy {loss.policy!r} is not a joiner policy")
    torch.manual_seed(seed)
    cfg = ModelConfig(name="sparse_sharing", embedding_dim=4, bottom=(16,), tower=(8,))
    model = build_model(cfg, schema)
    g = torch.Generator().manual_seed(seed)
    batch, meta = random_stream(schema, 64, loss.policy, g)
    w = loss.weights(model, batch, meta)
    _check_weights(loss, w, len(batch))

    final = StreamMeta(torch.full_like(meta.kind, KIND_CODES["final"]), meta.elapsed_s)
    wf = loss.weights(model, batch, final)
    _check_weights(loss, wf, len(batch))
    if wf is not None and not all(bool((v == 1).all()) for v in wf.values()):
        raise _fail(loss, "final rows (true labels) must weigh 1")

    opt = make_optimizer(model, lr=1e-2)
    losses = train_step(model, batch, opt, weights=w)
    if not all(torch.isfinite(torch.tensor(v)) for v in losses.values()):
        raise _fail(loss, f"non-finite training loss {losses}")
    loss.update(model, batch, meta)
    if any(not torch.isfinite(p).all() for p in model.parameters()):
        raise _fail(loss, "a model parameter became non-finite")
    w2 = loss.weights(model, batch, meta)
    _check_weights(loss, w2, len(batch))

    state = loss.state_dict()
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise _fail(loss, f"state {k!r} is not a tensor")
    clone = make()
    clone.load_state_dict(state)
    w3 = clone.weights(model, batch, meta)
    if (w2 is None) != (w3 is None) or (
        w2 is not None and w3 is not None and any(not torch.equal(w2[t], w3[t]) for t in w2)
    ):
        raise _fail(loss, "weights differ after a state_dict round trip")
    if not state:
        try:
            clone.load_state_dict({"foreign": torch.zeros(1)})
        except ValueError:
            pass
        else:
            raise _fail(loss, "a loss without state accepted a foreign state")
