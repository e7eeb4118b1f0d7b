"""One optimisation step, training passes and batched prediction for every model.

Losses (:func:`task_losses`): CTR is BCE on all rows. The CVR objective is the model's own
(``MultiTaskModel.cvr_objective``: esmm / aitm ``entire_space``, escm2 ``counterfactual``)
or else ``train.cvr_loss``:

* ``clicked``: BCE of pCVR on clicked rows only;
* ``entire_space`` (ESMM): BCE of CTCVR = pCTR * pCVR against click ∧ conversion, all rows;
* ``counterfactual`` (ESCM², IPS): ``ips_weight`` * mean over all rows of
  click * BCE(pCVR, conversion) / max(pCTR, min_propensity) (pCTR without gradient) plus
  ``ctcvr_weight`` * the CTCVR loss (weights from the model's config).

``cvr_weight`` is CVR's share of every update. Adam divides a constant loss scale out of any
parameter only one task trains, so the weight acts twice: as the loss weight where both
tasks' gradients meet in one Adam state (shared embeddings, shared bottoms), and as a
step-size multiplier of the parameters only CVR trains (its tower, its masked-weight state in
sparse sharing, see :meth:`~lt4rec.models.blocks.MultiTaskModel.own_parameters`).

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

``embedding_l2`` is a row-wise L2 penalty ``l2 * ||row||^2 / 2`` on each embedding row a
batch touches (its gradient ``l2 * row`` is added to the row's gradient before Adam): rare
hashed ids, whose loss gradient is small, are pulled to zero; frequent ones barely feel it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lt4rec.config.model import ModelConfig, TrainConfig
from lt4rec.data.batch import TASKS, Batch
from lt4rec.models.blocks import EmbeddingBlock, MultiTaskModel
from lt4rec.models.sparse_sharing import SparseSharing
from lt4rec.train.optim import TaskMaskedAdam

_EPS = 1e-7
CVR_LOSSES = ("clicked", "entire_space", "counterfactual")


def make_optimizer(model: MultiTaskModel, lr: float, weight_decay: float = 0.0) -> TaskMaskedAdam:
    """The optimiser for ``model``: per-task masked state for sparse sharing, Adam otherwise."""
    params = dict(model.named_parameters())
    owners: dict[str, dict[str, torch.Tensor | None]] = {}
    if isinstance(model, SparseSharing):
        for t in TASKS:
            owners[t] = {}
            for i, lay in enumerate(model.masked_layers()):
                owners[t][f"layers.{i}.weight"] = lay.mask(t)
            owners[t].update({n: None for n in model.own_parameters(t)})
    return TaskMaskedAdam(params, owners, lr=lr, weight_decay=weight_decay)


Weights = Mapping[str, torch.Tensor]  # task -> [B] per-row sample weights


def embedding_row_grads(
    module: nn.Module, embedding_l2: float = 0.0
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{"<block>.weight": (rows [U], grad [U, dim])}`` of every embedding block of
    ``module`` after a backward pass, for :meth:`TaskMaskedAdam.step`'s lazy row update;
    ``embedding_l2`` adds the row-wise L2 gradient ``l2 * row`` (module docstring)."""
    rows: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, mod in module.named_modules():
        if isinstance(mod, EmbeddingBlock) and (rg := mod.row_grad()) is not None:
            uniq, g_rows = rg  # [U], [U, dim]
            if embedding_l2 > 0:
                g_rows = g_rows + embedding_l2 * mod.weight.detach()[uniq]
            rows[f"{name}.weight" if name else "weight"] = (uniq, g_rows)
    return rows


def _mean(row: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """Mean of the per-row losses ``row`` [B], weighted by ``w`` [B] when given."""
    return (row if w is None else row * w).mean()


def _bce(z: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """Mean (optionally weighted) BCE with logits; 0 (with a graph) for no rows."""
    if not z.numel():
        return z.sum()
    if w is None:
        return F.binary_cross_entropy_with_logits(z, y)
    return (F.binary_cross_entropy_with_logits(z, y, reduction="none") * w).mean()


def set_embeddings_trainable(model: MultiTaskModel, trainable: bool) -> None:
    """Freeze or unfreeze every embedding table of ``model`` (frozen: no row gradients, no
    update, and a cheaper backward pass)."""
    for mod in model.modules():
        if isinstance(mod, EmbeddingBlock):
            mod.weight.requires_grad_(trainable)


def cvr_objective(model: MultiTaskModel, cvr_loss: str) -> str:
    """The CVR loss a step of ``model`` uses: the model's own objective, else ``cvr_loss``."""
    objective = model.cvr_objective or cvr_loss
    if objective not in CVR_LOSSES:
        raise ValueError(f"unknown CVR loss {objective!r} (known: {', '.join(CVR_LOSSES)})")
    return objective


def _ctcvr_rows(logits: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
    """Per-row CTCVR loss [B]: log p(ctcvr) = logsigmoid(a) + logsigmoid(b), stably."""
    log_p = F.logsigmoid(logits["ctr"]) + F.logsigmoid(logits["cvr"])  # [B]
    log_q = torch.log1p(-log_p.exp().clamp(max=1 - _EPS))
    y = batch.click * batch.conversion
    return -(y * log_p + (1 - y) * log_q)


def _counterfactual_rows(
    logits: dict[str, torch.Tensor], batch: Batch, cfg: ModelConfig
) -> torch.Tensor:
    """Per-row ESCM²-IPS loss [B]: IPS-weighted CVR risk + weighted CTCVR loss."""
    propensity = torch.sigmoid(logits["ctr"]).detach().clamp(min=cfg.min_propensity)  # [B]
    bce = F.binary_cross_entropy_with_logits(logits["cvr"], batch.conversion, reduction="none")
    ips = batch.click * bce / propensity
    return cfg.ips_weight * ips + cfg.ctcvr_weight * _ctcvr_rows(logits, batch)


def task_losses(
    logits: dict[str, torch.Tensor],
    batch: Batch,
    *,
    entire_space: bool = False,
    tasks: Sequence[str] = TASKS,
    cvr_clicked_only: bool = False,
    weights: Weights | None = None,
    objective: str | None = None,
    model_cfg: ModelConfig | None = None,
) -> dict[str, torch.Tensor]:
    """Mean loss per task in ``tasks`` (scalar tensors).

    ``objective`` (``clicked`` / ``entire_space`` / ``counterfactual``) names the CVR loss;
    when None, ``entire_space`` picks between the first two (the older call style).
    ``model_cfg`` gives the counterfactual loss its weights (defaults when None).
    ``cvr_clicked_only``: ``logits["cvr"]`` holds only the clicked rows of ``batch``, in
    order (the sparse-sharing step skips the CVR path for unclicked rows). ``weights``:
    per-row sample weights ``[B]`` by task (see the module docstring).
    """
    w = weights or {}
    objective = objective or ("entire_space" if entire_space else "clicked")
    out: dict[str, torch.Tensor] = {}
    if "ctr" in tasks:
        out["ctr"] = _bce(logits["ctr"], batch.click, w.get("ctr"))
    if "cvr" in tasks:
        wv = w.get("cvr")
        if objective == "entire_space":
            out["cvr"] = _mean(_ctcvr_rows(logits, batch), wv)
        elif objective == "counterfactual":
            out["cvr"] = _mean(_counterfactual_rows(logits, batch, model_cfg or ModelConfig()), wv)
        else:
            clicked = batch.click > 0
            wc = None if wv is None else wv[clicked]
            z = logits["cvr"] if cvr_clicked_only else logits["cvr"][clicked]  # [n_clicked]
            out["cvr"] = _bce(z, batch.conversion[clicked], wc)
    return out


def step_options(train: TrainConfig) -> dict[str, Any]:
    """The keyword arguments of :func:`train_step` that ``[train]`` configures, so that
    every consumer (joint training, the online worker, re-pruning) trains alike:
    ``train_step(model, batch, opt, **step_options(cfg.train))``."""
    return {
        "cvr_loss": train.cvr_loss,
        "cvr_weight": train.cvr_weight,
        "embedding_l2": train.embedding_l2,
    }


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
    embedding_l2: float = 0.0,
) -> dict[str, float]:
    """One forward/backward/update on ``batch`` with the losses of ``tasks``.

    Returns the unweighted loss of each task in ``tasks``; ``cvr_weight`` and
    ``embedding_l2`` are described in the module docstring.
    ``weights``: optional per-row sample weights ``{task: [B]}`` (delayed-feedback losses).
    ``logits_out``: when given, filled with the detached logits of this step's forward pass,
    i.e. the model's scores *before* the update (the online worker's progressive validation
    reuses them instead of a second forward): ``"ctr"`` over the batch's rows, ``"cvr"`` over
    its clicked rows (the clicked loss) or over all rows (the all-rows losses); a task whose
    logits the step did not compute is absent.
    """
    model.train()
    opt.zero_grad()
    objective = cvr_objective(model, cvr_loss)
    all_rows = objective != "clicked"
    ws: dict[str, list[torch.Tensor]] = {}
    if isinstance(model, SparseSharing):
        if tuple(tasks) == ("cvr",) and not all_rows:
            keep = batch.click > 0  # CVR alone needs the clicked rows only
            batch = batch.take(keep)
            weights = None if weights is None else {t: v[keep] for t, v in weights.items()}
        x = model.embed(batch)  # [B, in_dim]
        clicked = batch.click > 0
        need = set(tasks) | ({"ctr"} if all_rows and "cvr" in tasks else set())
        logits = {}
        for t in TASKS:
            if t in need:
                ws[t] = model.task_weights(t)
                for w in ws[t]:
                    w.retain_grad()
                # CVR on clicked rows only: its path never sees the other rows' inputs.
                xin = x[clicked] if t == "cvr" and not all_rows else x
                logits[t] = model.mlp_forward(xin, t, ws[t])
        losses = task_losses(
            logits, batch, tasks=tasks, cvr_clicked_only=not all_rows, objective=objective,
            model_cfg=model.cfg, weights=weights,
        )  # fmt: skip
    else:
        logits = model(batch)
        losses = task_losses(
            logits, batch, tasks=tasks, objective=objective, model_cfg=model.cfg, weights=weights
        )
        if not all_rows:
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
            for name, p in model.own_parameters(t).items():
                if p.grad is not None:
                    g[name] = p.grad
            grads[t] = g
    rows = embedding_row_grads(model, embedding_l2)
    task_scale = param_scale = None
    if cvr_weight != 1.0:
        if isinstance(model, SparseSharing):
            task_scale = {"cvr": cvr_weight}
        else:
            param_scale = {n: cvr_weight for n in model.own_parameters("cvr")}
    opt.step(grads, rows, task_scale=task_scale, param_scale=param_scale)
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
