"""Adam with one state per task for masked parameters: no cross-task optimiser leakage.

Parameters are of two kinds:

* **owned** parameters appear in ``owners[task]`` with a 0/1 mask (or ``None`` = all ones).
  Each (task, parameter) pair has its own Adam moments, fed only with that task's gradient,
  and its update (and weight decay) is multiplied by that task's mask. A weight private to
  task A therefore never moves on a step where only task B has a gradient, not even through
  momentum, and a weight pruned for every task never moves at all.
* **shared** parameters (in no task's map, e.g. the embedding tables) get one ordinary Adam
  state from ``p.grad``. Sparse (row) gradients get the lazy update of ``SparseAdam``: only
  the rows a batch touched are updated, which keeps hashed embedding tables cheap.

The online worker reuses this optimiser with frozen masks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn


class TaskMaskedAdam:
    """Adam (decoupled weight decay) with per-task, mask-gated state for owned parameters."""

    def __init__(
        self,
        params: Mapping[str, nn.Parameter],
        owners: Mapping[str, Mapping[str, torch.Tensor | None]] | None = None,
        *,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        self.params = dict(params)
        self.owners = {t: dict(m) for t, m in (owners or {}).items()}
        for task, masks in self.owners.items():
            for name in masks:
                if name not in self.params:
                    raise KeyError(f"task {task!r} owns unknown parameter {name!r}")
        owned = {n for m in self.owners.values() for n in m}
        self.shared = [n for n in self.params if n not in owned]
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.state: dict[str, torch.Tensor] = {}  # "{key}/m", "{key}/v", "{key}/step"

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def _moments(
        self, key: str, p: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if f"{key}/m" not in self.state:
            self.state[f"{key}/m"] = torch.zeros_like(p)
            self.state[f"{key}/v"] = torch.zeros_like(p)
            self.state[f"{key}/step"] = torch.zeros((), dtype=torch.float64)
        return self.state[f"{key}/m"], self.state[f"{key}/v"], self.state[f"{key}/step"]

    @torch.no_grad()
    def _dense_update(
        self,
        key: str,
        p: torch.Tensor,
        g: torch.Tensor,
        mask: torch.Tensor | None,
        scale: float = 1.0,
    ) -> None:
        b1, b2 = self.betas
        m, v, step = self._moments(key, p)
        step += 1
        t = float(step)
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (v / (1 - b2**t)).sqrt_().add_(self.eps)
        upd = m / denom  # [same as p]
        if self.weight_decay:
            upd.add_(p, alpha=self.weight_decay * (1 - b1**t))
        if mask is not None:
            upd.mul_(mask)  # exact zeros where the task's mask is 0
        p.sub_(upd, alpha=scale * self.lr / (1 - b1**t))

    @torch.no_grad()
    def _rows_update(
        self, key: str, p: torch.Tensor, rows: torch.Tensor, vals: torch.Tensor, scale: float = 1.0
    ) -> None:
        """Lazy Adam on distinct ``rows`` [R] of ``p`` with gradient ``vals`` [R, ...]."""
        b1, b2 = self.betas
        m, v, step = self._moments(key, p)
        step += 1
        t = float(step)
        m_r = m[rows].mul_(b1).add_(vals, alpha=1 - b1)
        v_r = v[rows].mul_(b2).addcmul_(vals, vals, value=1 - b2)
        m[rows], v[rows] = m_r, v_r
        upd = m_r / (v_r / (1 - b2**t)).sqrt_().add_(self.eps)
        if self.weight_decay:
            upd.add_(p[rows], alpha=self.weight_decay * (1 - b1**t))
        p.index_add_(0, rows, upd, alpha=-scale * self.lr / (1 - b1**t))

    @torch.no_grad()
    def step(
        self,
        task_grads: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
        row_grads: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
        *,
        task_scale: Mapping[str, float] | None = None,
        param_scale: Mapping[str, float] | None = None,
    ) -> None:
        """Apply one update.

        ``task_grads[task][name]`` is the gradient of ``task``'s loss for owned parameter
        ``name`` (missing = the task took no part in this step). Shared parameters use
        ``row_grads[name] = (distinct rows [R], grad [R, ...])`` when given (lazy row
        update), else ``p.grad`` (dense, or sparse COO; ``None`` = no update).
        ``task_scale[task]`` multiplies the step of every state of ``task`` and
        ``param_scale[name]`` the step of shared parameter ``name`` (per-task step sizes:
        Adam's update does not change with the gradient's scale).
        """
        rows = row_grads or {}
        pscale = param_scale or {}
        for name in self.shared:
            p = self.params[name]
            sc = pscale.get(name, 1.0)
            if name in rows:
                self._rows_update(name, p, *rows[name], scale=sc)
            elif p.grad is None:
                continue
            elif p.grad.is_sparse:
                g = p.grad.coalesce()
                self._rows_update(name, p, g.indices()[0], g.values(), scale=sc)
            else:
                self._dense_update(name, p, p.grad, None, sc)
        tscale = task_scale or {}
        for task, grads in (task_grads or {}).items():
            owned = self.owners.get(task)
            if owned is None:
                raise KeyError(f"gradients for unknown task {task!r}")
            sc = tscale.get(task, 1.0)
            for name, g in grads.items():
                if name not in owned:
                    raise KeyError(f"task {task!r} does not own parameter {name!r}")
                self._dense_update(f"{task}:{name}", self.params[name], g, owned[name], sc)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every moment tensor by key (``{task}:{name}/m`` or ``{name}/m``) for checkpoints."""
        return {k: v.detach().clone() for k, v in self.state.items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        self.state = {k: v.detach().clone() for k, v in state.items()}


def scheduled_lr(base: float, step: int, total: int, warmup: int = 0, decay: str = "none") -> float:
    """Learning rate of step ``step`` (0-based) of ``total``: linear warm-up, then decay.

    ``decay``: ``none`` (constant), ``cosine`` or ``linear`` from ``base`` to 0 at ``total``.
    """
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    if decay == "none" or total <= warmup:
        return base
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    if decay == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * frac))
    if decay == "linear":
        return base * (1.0 - frac)
    raise ValueError(f"unknown lr_decay {decay!r} (known: none, cosine, linear)")
