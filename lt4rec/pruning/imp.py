"""Per-task iterative magnitude pruning with rewinding: ``find_ticket``.

Every task starts from the SAME initial weights (one seed) and trains its single-task view
of the base network (``W ⊙ M_task``, only its own loss; CVR with ``train.cvr_loss``: on
clicked rows, or with an all-rows objective together with the dense CTR view that gives it
pCTR). After each round the remaining weights are magnitude-pruned
(:func:`~lt4rec.pruning.prune.prune`), the weights (and optimiser state) are rewound to the
initial weights or to training step k (:func:`rewind_point`: ``rewind_step``, or
``rewind_fraction`` of a round, capped at the round's last step), and the network is
retrained. Each round is scored on **validation** data
and the mask is chosen with ``select`` (``best_valid``: the best validation AUC among rounds
whose MLP density is <= ``max_density``, else the sparsest round; ``last``: the last round).
With ``rewind = "step"`` the ticket also carries the model state at step k of the dense round
(``Ticket.rewind_state``), from which the joint phase may start (:mod:`lt4rec.pruning.rewind`).

Speed: ``fit`` gives every round ``steps_per_round`` = ``round_fraction`` (CTR) or
``cvr_round_fraction`` (CVR) of an epoch of batches of the freshly shuffled training data,
so a task's search costs about ``(rounds + 1) * fraction`` epochs. A CVR round only runs
the clicked rows of each batch through the network (CVR is defined given a click), which
makes it roughly 1/CTR times cheaper than a CTR round.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch

from lt4rec.config.model import PruneConfig, TrainConfig
from lt4rec.data.batch import Batch
from lt4rec.metrics.ranking import auc, logloss
from lt4rec.models.sparse_sharing import SparseSharing
from lt4rec.pruning.mask import Mask
from lt4rec.pruning.prune import prune
from lt4rec.train.loop import cvr_objective, make_optimizer, predict, train_step
from lt4rec.train.progress import log


@dataclass(frozen=True)
class RoundResult:
    """One IMP round of one task, scored on validation data."""

    round: int
    density: float  # MLP density of the mask trained in this round
    valid_auc: float
    valid_logloss: float
    steps: int
    seconds: float


@dataclass(frozen=True)
class Ticket:
    """A task's winning ticket and the history of the search that found it."""

    task: str
    mask: Mask
    selected_round: int
    rounds: tuple[RoundResult, ...]
    # The whole model's state at the rewind step of the dense round (None: rewind to init).
    rewind_state: dict[str, torch.Tensor] | None = None
    rewind_step: int = 0  # the step k the rounds were rewound to (0: the initial weights)


def select_round(rounds: list[RoundResult], hp: PruneConfig) -> int:
    """Index of the round whose mask is kept (see module docstring)."""
    if hp.select == "last" or not rounds:
        return len(rounds) - 1
    ok = [r for r in rounds if r.density <= hp.max_density + 1e-9 and r.valid_auc == r.valid_auc]
    if not ok:
        return min(range(len(rounds)), key=lambda i: rounds[i].density)
    return max(ok, key=lambda r: r.valid_auc).round


def _score(
    task: str, model: SparseSharing, valid: Iterable[Batch], device: torch.device
) -> tuple[float, float]:
    p = predict(model, valid, device)
    if task == "ctr":
        return auc(p.p_ctr, p.click), logloss(p.p_ctr, p.click)
    clicked = p.click > 0.5
    return auc(p.p_cvr[clicked], p.conversion[clicked]), logloss(
        p.p_cvr[clicked], p.conversion[clicked]
    )


def find_ticket(
    task: str,
    model: SparseSharing,
    init_state: Mapping[str, torch.Tensor],
    train_batches: Callable[[], Iterator[Batch]],
    valid_batches: Callable[[], Iterable[Batch]],
    prune_cfg: PruneConfig,
    train_cfg: TrainConfig,
    device: torch.device,
    steps_per_round: int,
    on_round: Callable[[RoundResult], None] | None = None,
) -> Ticket:
    """Search ``task``'s ticket on ``model`` (its weights are overwritten from ``init_state``).

    ``train_batches()`` yields a freshly shuffled pass over the training data (CPU batches);
    each round takes ``steps_per_round`` batches of it (cycling if needed).
    """
    if prune_cfg.prune_embeddings:
        raise ValueError(
            "prune.prune_embeddings=true is not supported by the sparse_sharing model: its "
            "embedding tables are shared by all tasks (only the MLP after them is masked)"
        )
    names = model.layer_names()
    params = dict(model.named_parameters())
    mask = Mask.ones_like({n: params[n] for n in names})
    rewind_at = rewind_point(prune_cfg, steps_per_round)
    # CVR with an all-rows objective needs pCTR: its rounds also train the (dense) CTR view.
    loss = "clicked" if prune_cfg.search_cvr_loss == "clicked" else train_cfg.cvr_loss
    objective = cvr_objective(model, loss)
    tasks = ("ctr", "cvr") if task == "cvr" and objective != "clicked" else (task,)
    rewind: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None] = (
        {k: v.clone() for k, v in init_state.items()},
        None,
    )
    results: list[RoundResult] = []
    masks: list[Mask] = []
    for r in range(prune_cfg.rounds + 1):
        t0 = time.perf_counter()
        model.load_state_dict(rewind[0])
        model.set_masks(task, dict(mask))
        opt = make_optimizer(model, train_cfg.lr, train_cfg.weight_decay)
        if rewind[1] is not None:
            opt.load_state_dict(rewind[1])
        step = rewind_at if r > 0 else 0
        it = train_batches()
        while step < steps_per_round:
            if r == 0 and step == rewind_at and rewind_at > 0:
                rewind = (
                    {k: v.detach().clone() for k, v in model.state_dict().items()},
                    opt.state_dict(),
                )
            batch = next(it, None)
            if batch is None:
                it = train_batches()
                continue
            train_step(
                model, batch.to(device), opt, cvr_loss=objective, tasks=tasks,
                embedding_l2=train_cfg.embedding_l2,
            )  # fmt: skip
            step += 1
        v_auc, v_ll = _score(task, model, valid_batches(), device)
        res = RoundResult(r, mask.density, v_auc, v_ll, step, time.perf_counter() - t0)
        results.append(res)
        masks.append(mask)
        if on_round is not None:
            on_round(res)
        if r < prune_cfg.rounds:
            trained = {n: params[n].detach() for n in names}
            mask = prune(trained, mask, prune_cfg, has_output=model.head is None)
    chosen = select_round(results, prune_cfg)
    state = None if rewind[1] is None else rewind[0]
    return Ticket(task, masks[chosen], chosen, tuple(results), state, rewind_at)


def rewind_point(hp: PruneConfig, steps_per_round: int) -> int:
    """The step k pruned rounds rewind to: 0 for ``init``, else ``rewind_fraction`` of a
    round or ``rewind_step``, capped (and logged) at the round's last step."""
    if hp.rewind == "init":
        return 0
    want = (
        hp.rewind_step
        if hp.rewind_fraction is None
        else round(hp.rewind_fraction * steps_per_round)
    )
    k = min(want, max(steps_per_round - 1, 0))
    if k != want:
        log(f"prune: rewind step {want} capped at {k} (a round has {steps_per_round} steps)")
    return k
