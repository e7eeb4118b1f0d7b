"""One optimisation step, training passes and batched prediction for every model.

Losses: CTR is BCE on all rows. CVR is either BCE on clicked rows only (``clicked``) or,
ESMM-style (``entire_space``), BCE of CTCVR = pCTR * pCVR against click ∧ conversion on all
rows. Models with ``entire_space = True`` (esmm) always use the latter.

For the sparse-shared model the step keeps the masked weights ``W ⊙ M_t`` of each task as
separate graph nodes, so one backward pass yields every task's own gradient, which the
:class:`~lt4rec.train.optim.TaskMaskedAdam` applies with that task's state and mask. With
the ``clicked`` loss its CVR path only runs the clicked rows (the others do not enter the
loss), which halves the cost of a joint step and makes CVR-only pruning rounds cheap.

**Sample weights** (``weights={task: w[B]}``, one weight per row of the batch) turn each
task's mean loss into ``mean(w * loss_row)`` over the rows the task trains on (CVR: the
clicked rows, or all rows for the entire-space loss). The delayed-feedback losses of the
online worker (FNW, ES-DFM importance weights) are such weights; without them every row
weighs 1 and the losses are the plain means.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lt4rec.data.batch import TASKS, Batch
from lt4rec.models.blocks import EmbeddingBlock, MultiTaskModel
from lt4rec.models.sparse_sharing import SparseSharing
from lt4rec.train.optim import TaskMaskedAdam

_EPS = 1e-7


def make_optimizer(model: MultiTaskModel, lr: float, weight_decay: float = 0.0) -> TaskMaskedAdam:
    """The optimiser for ``model``: per-task masked state for sparse sharing, Adam otherwise."""
    params = dict(model.named_parameters())
    owners: dict[str, dict[str, torch.Tensor | None]] = {}
    if isinstance(model, SparseSharing):
        for t in TASKS:
            owners[t] = {}
            for i, lay in enumerate(model.masked_layers()):
                owners[t][f"layers.{i}.weight"] = lay.mask(t)
                owners[t][f"layers.{i}.bias.{t}"] = None
    return TaskMaskedAdam(params, owners, lr=lr, weight_decay=weight_decay)


Weights = Mapping[str, torch.Tensor]  # task -> [B] per-row sample weights


def embedding_row_grads(module: nn.Module) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{"<block>.weight": (rows [U], grad [U, dim])}`` of every embedding block of
    ``module`` after a backward pass, for :meth:`TaskMaskedAdam.step`'s lazy row update."""
    rows: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, mod in module.named_modules():
        if isinstance(mod, EmbeddingBlock) and (rg := mod.row_grad()) is not None:
            rows[f"{name}.weight" if name else "weight"] = rg
    return rows


def _bce(z: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """Mean (optionally weighted) BCE with logits; 0 (with a graph) for no rows."""
    if not z.numel():
        return z.sum()
    if w is None:
        return F.binary_cross_entropy_with_logits(z, y)
    return (F.binary_cross_entropy_with_logits(z, y, reduction="none") * w).mean()


def task_losses(
    logits: dict[str, torch.Tensor],
    batch: Batch,
    *,
    entire_space: bool,
    tasks: Sequence[str] = TASKS,
    cvr_clicked_only: bool = False,
    weights: Weights | None = None,
) -> dict[str, torch.Tensor]:
    """Mean loss per task in ``tasks`` (scalar tensors).

    ``cvr_clicked_only``: ``logits["cvr"]`` holds only the clicked rows of ``batch``, in
    order (the sparse-sharing step skips the CVR path for unclicked rows). ``weights``:
    per-row sample weights ``[B]`` by task (see the module docstring).
    """
    w = weights or {}
    out: dict[str, torch.Tensor] = {}
    if "ctr" in tasks:
        out["ctr"] = _bce(logits["ctr"], batch.click, w.get("ctr"))
    if "cvr" in tasks:
        wv = w.get("cvr")
        if entire_space:
            # log p(ctcvr) = logsigmoid(a) + logsigmoid(b), computed stably.
            log_p = F.logsigmoid(logits["ctr"]) + F.logsigmoid(logits["cvr"])  # [B]
            log_q = torch.log1p(-log_p.exp().clamp(max=1 - _EPS))
            y = batch.click * batch.conversion
            row = -(y * log_p + (1 - y) * log_q)  # [B]
            out["cvr"] = (row if wv is None else row * wv).mean()
        else:
            clicked = batch.click > 0
            wc = None if wv is None else wv[clicked]
            z = logits["cvr"] if cvr_clicked_only else logits["cvr"][clicked]  # [n_clicked]
            out["cvr"] = _bce(z, batch.conversion[clicked], wc)
    return out


def train_step(
    model: MultiTaskModel,
    batch: Batch,
    opt: TaskMaskedAdam,
    *,
    cvr_loss: str = "clicked",
    cvr_weight: float = 1.0,
    tasks: Sequence[str] = TASKS,
    weights: Weights | None = None,
    logits_out: dict[str, torch.Tensor] | None = None,
) -> dict[str, float]:
    """One forward/backward/update on ``batch`` with the losses of ``tasks``.

    ``weights``: optional per-row sample weights ``{task: [B]}`` (delayed-feedback losses).
    ``logits_out``: when given, filled with the detached logits of this step's forward pass,
    i.e. the model's scores *before* the update (the online worker's progressive validation
    reuses them instead of a second forward): ``"ctr"`` over the batch's rows, ``"cvr"`` over
    its clicked rows (the clicked loss) or over all rows (entire-space loss); a task whose
    logits the step did not compute is absent.
    """
    model.train()
    opt.zero_grad()
    entire = model.entire_space or cvr_loss == "entire_space"
    ws: dict[str, list[torch.Tensor]] = {}
    if isinstance(model, SparseSharing):
        if tuple(tasks) == ("cvr",) and not entire:
            keep = batch.click > 0  # CVR alone needs the clicked rows only
            batch = batch.take(keep)
            weights = None if weights is None else {t: v[keep] for t, v in weights.items()}
        x = model.embed(batch)  # [B, in_dim]
        clicked = batch.click > 0
        need = set(tasks) | ({"ctr"} if entire and "cvr" in tasks else set())
        logits = {}
        for t in TASKS:
            if t in need:
                ws[t] = model.task_weights(t)
                for w in ws[t]:
                    w.retain_grad()
                # CVR on clicked rows only: its path never sees the other rows' inputs.
                xin = x[clicked] if t == "cvr" and not entire else x
                logits[t] = model.mlp_forward(xin, t, ws[t])
        losses = task_losses(
            logits,
            batch,
            entire_space=entire,
            tasks=tasks,
            cvr_clicked_only=not entire,
            weights=weights,
        )
    else:
        logits = model(batch)
        losses = task_losses(logits, batch, entire_space=entire, tasks=tasks, weights=weights)
        if not entire:
            logits = {**logits, "cvr": logits["cvr"][batch.click > 0]}
    if logits_out is not None:
        logits_out.update({t: v.detach() for t, v in logits.items()})
    total = sum((cvr_weight if t == "cvr" else 1.0) * v for t, v in losses.items())
    assert isinstance(total, torch.Tensor)
    total.backward()
    grads: dict[str, dict[str, torch.Tensor]] = {}
    if isinstance(model, SparseSharing):
        for t, wl in ws.items():
            g: dict[str, torch.Tensor] = {}
            for i, (lay, w) in enumerate(zip(model.masked_layers(), wl, strict=True)):
                if w.grad is not None:
                    g[f"layers.{i}.weight"] = w.grad * lay.mask(t)  # dL_t/dW, [out, in]
                b = lay.bias[t]
                if b.grad is not None:
                    g[f"layers.{i}.bias.{t}"] = b.grad
            grads[t] = g
    opt.step(grads, embedding_row_grads(model))
    return {t: float(v.detach()) for t, v in losses.items()}


@dataclass(frozen=True)
class Predictions:
    """Model outputs and labels over a dataset, as numpy arrays of length N."""

    p_ctr: np.ndarray
    p_cvr: np.ndarray
    click: np.ndarray
    conversion: np.ndarray
    user: np.ndarray | None


@torch.no_grad()
def predict(model: MultiTaskModel, batches: Iterable[Batch], device: torch.device) -> Predictions:
    """Probabilities of both tasks for every row of ``batches`` (in order)."""
    model.eval()
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("p_ctr", "p_cvr", "click", "conv", "user")}
    for batch in batches:
        b = batch.to(device)
        logits = model(b)
        cols["p_ctr"].append(torch.sigmoid(logits["ctr"]).float().cpu().numpy())
        cols["p_cvr"].append(torch.sigmoid(logits["cvr"]).float().cpu().numpy())
        cols["click"].append(batch.click.numpy())
        cols["conv"].append(batch.conversion.numpy())
        if batch.user is not None:
            cols["user"].append(batch.user.numpy())

    def cat(k: str) -> np.ndarray:
        return np.concatenate(cols[k]) if cols[k] else np.zeros(0)

    return Predictions(
        p_ctr=cat("p_ctr"),
        p_cvr=cat("p_cvr"),
        click=cat("click"),
        conversion=cat("conv"),
        user=cat("user") if cols["user"] else None,
    )
