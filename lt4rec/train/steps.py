"""The steps of training that ``lt4rec fit``, the re-pruning job and the online worker compose.

Each step is one function with explicit inputs (no hidden globals, no checkpoint I/O):

1. :func:`load_splits` — encode train / valid / test with one feature spec, the dense
   normalizer fitted on train only;
2. :func:`init_model` — ONE seeded initialisation shared by every task's ticket search;
3. :func:`search_tickets` — per-task IMP with rewinding on **validation** data, then
   :func:`install_tickets` puts the masks (and the rewind-step weights) on the model;
4. :func:`train_joint` — joint training of every task on ``W ⊙ M_task``, validated every
   ``train.eval_every`` steps and per epoch, keeping the best state by ``train.objective``;
5. :func:`evaluate` / :func:`model_report` — metrics of a model on a split, its density.

Data arrives through the :class:`BatchSource` protocol, so an in-memory
:class:`~lt4rec.data.dataset.EncodedDataset` and a streamed archive window both fit.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow.parquet as pq
import torch

from lt4rec.config import AppConfig
from lt4rec.data import FeatureSpec, Normalizer, field_schema, load_parquet, parquet_files
from lt4rec.data.batch import TASKS, Batch, FieldSchema
from lt4rec.data.dataset import EncodedDataset
from lt4rec.metrics.evaluate import evaluate_predictions, oracle_metrics
from lt4rec.models import build_model
from lt4rec.models.blocks import MultiTaskModel
from lt4rec.models.sparse_sharing import SparseSharing
from lt4rec.pruning.imp import RoundResult, Ticket, find_ticket
from lt4rec.pruning.rewind import merge_rewind_states
from lt4rec.report.sharing import sharing_report
from lt4rec.train.loop import (
    Predictions,
    make_optimizer,
    predict,
    set_embeddings_trainable,
    step_options,
    train_step,
)
from lt4rec.train.optim import TaskMaskedAdam, scheduled_lr
from lt4rec.train.progress import log, track

State = dict[str, torch.Tensor]


class BatchSource(Protocol):
    """Rows that can be iterated in mini-batches (in memory or streamed from files)."""

    def __len__(self) -> int: ...

    def batches(
        self, batch_size: int, shuffle: bool, generator: torch.Generator | None = None
    ) -> Iterator[Batch]: ...


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r} but CUDA is not available")
    return dev


@dataclass(frozen=True)
class Splits:
    """Encoded train / valid / test data of one feature spec (normalizer fitted on train)."""

    train: EncodedDataset
    valid: EncodedDataset
    test: EncodedDataset | None
    spec: FeatureSpec
    normalizer: Normalizer
    schema: FieldSchema
    seconds: float


def load_splits(
    cfg: AppConfig,
    train: str | Path,
    valid: str | Path,
    test: str | Path | None,
    features: str | Path,
) -> Splits:
    """Read and encode the splits; the dense normalizer is fitted on ``train`` only."""
    t0 = time.perf_counter()
    spec = FeatureSpec.load(features)
    train_ds, norm = load_parquet(train, spec, cfg.data)
    valid_ds, _ = load_parquet(valid, spec, cfg.data, norm)
    test_ds = load_parquet(test, spec, cfg.data, norm)[0] if test is not None else None
    seconds = time.perf_counter() - t0
    n_test = len(test_ds) if test_ds is not None else 0
    log(f"loaded train={len(train_ds)} valid={len(valid_ds)} test={n_test} rows in {seconds:.1f}s")
    return Splits(train_ds, valid_ds, test_ds, spec, norm, field_schema(spec, cfg.data), seconds)


def init_model(
    cfg: AppConfig, schema: FieldSchema, device: torch.device
) -> tuple[MultiTaskModel, State]:
    """The model from ONE seed (``train.seed``) and a copy of its initial state."""
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, schema).to(device)
    init_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return model, init_state


def eval_batches(ds: BatchSource, batch_size: int) -> Iterator[Batch]:
    """Batches of ``ds`` in order, large (evaluation needs no gradient memory)."""
    return ds.batches(max(batch_size, 8192), shuffle=False)


def search_tickets(
    cfg: AppConfig,
    model: MultiTaskModel,
    init_state: State,
    train: BatchSource,
    valid: BatchSource,
    device: torch.device,
    gen: torch.Generator,
    on_round: Callable[[str, RoundResult], None] | None = None,
) -> dict[str, Ticket]:
    """Every task's winning ticket (empty for dense models or ``prune.rounds = 0``)."""
    if not isinstance(model, SparseSharing) or cfg.prune.rounds <= 0:
        return {}
    bs = cfg.data.batch_size
    tickets: dict[str, Ticket] = {}
    for task in TASKS:
        frac = cfg.prune.cvr_round_fraction if task == "cvr" else cfg.prune.round_fraction
        steps = max(1, round(frac * len(train) / bs))

        def report(r: RoundResult, task: str = task) -> None:
            log(
                f"prune {task} round {r.round}: density={r.density:.3f} "
                f"valid_auc={r.valid_auc:.4f} ({r.seconds:.1f}s)"
            )
            if on_round is not None:
                on_round(task, r)

        pcfg = cfg.prune
        if task == "cvr":
            rate = pcfg.rate if pcfg.cvr_rate is None else pcfg.cvr_rate
            rounds = pcfg.rounds if pcfg.cvr_rounds is None else pcfg.cvr_rounds
            pcfg = dataclasses.replace(pcfg, rate=rate, rounds=rounds)
        tickets[task] = find_ticket(
            task,
            model,
            init_state,
            lambda: train.batches(bs, shuffle=True, generator=gen),
            lambda: eval_batches(valid, bs),
            pcfg,
            cfg.train,
            device,
            steps,
            on_round=report,
        )
    return tickets


def install_tickets(
    cfg: AppConfig, model: MultiTaskModel, init_state: State, tickets: dict[str, Ticket]
) -> None:
    """Masks on the model; weights from init or the tickets' merged rewind states."""
    if not tickets:
        return
    assert isinstance(model, SparseSharing)
    if cfg.prune.joint_start == "rewind":
        model.load_state_dict(merge_rewind_states(init_state, tickets))
    else:
        model.load_state_dict(init_state)
    for task, ticket in tickets.items():
        model.set_masks(task, dict(ticket.mask))


def validation_score(m: dict[str, float], objective: str) -> float:
    """The ``train.objective`` of validation metrics ``m`` (``auc_sum``: CTR + CVR AUC)."""
    if objective == "auc_sum":
        return float(sum(m[k] for k in ("ctr_auc", "cvr_auc") if m[k] == m[k]))
    v = m[objective]
    return float(v) if v == v else float("-inf")


@dataclass
class JointResult:
    """What joint training did; the model holds the best validated state afterwards."""

    optimizer: TaskMaskedAdam
    best_epoch: int  # 1-based epoch of the best validation
    epochs_run: int
    valid_metrics: dict[str, float]
    examples: int  # training rows seen
    steps: int
    seconds: float
    best_step: int = 0  # optimiser steps done when the best state was validated
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)


def train_joint(
    cfg: AppConfig,
    model: MultiTaskModel,
    train: BatchSource,
    valid: BatchSource,
    device: torch.device,
    gen: torch.Generator,
    progress: bool | None = None,
) -> JointResult:
    """Train every task for up to ``train.epochs`` epochs, validating every ``eval_every``
    steps and after each epoch; keep the state with the best ``train.objective`` and stop
    early after ``train.patience`` validations without improvement."""
    tc = cfg.train
    opt = make_optimizer(model, tc.lr, tc.weight_decay)
    bs = cfg.data.batch_size
    t0 = time.perf_counter()
    steps_per_epoch = (len(train) + bs - 1) // bs
    total_steps = steps_per_epoch * tc.epochs
    best: dict[str, Any] = {"score": float("-inf"), "epoch": 0, "step": 0, "state": None}
    history: list[dict[str, float]] = []
    n_seen = steps = epochs_run = since_best = 0

    def validate(epoch: int) -> bool:
        """Validate, keep the state when best; True when early stopping says stop."""
        nonlocal since_best
        vm = evaluate(model, valid, device, bs, gauc=False)
        score = validation_score(vm, tc.objective)
        history.append({"epoch": epoch, "step": steps, "score": score, **vm})
        log(
            f"epoch {epoch} step {steps}: valid ctr_auc={vm['ctr_auc']:.4f} "
            f"cvr_auc={vm['cvr_auc']:.4f} {tc.objective}={score:.4f}"
        )
        if best["state"] is None or score > best["score"]:
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best.update(score=score, epoch=epoch, step=steps, state=state, metrics=vm)
            since_best = 0
            return False
        since_best += 1
        return bool(tc.patience) and since_best >= tc.patience

    stop = False
    for epoch in range(1, tc.epochs + 1):
        epochs_run = epoch
        set_embeddings_trainable(model, not tc.embedding_epochs or epoch <= tc.embedding_epochs)
        batches = train.batches(bs, shuffle=True, generator=gen)
        for batch in track(batches, steps_per_epoch, f"{cfg.model.name} epoch {epoch}", progress):
            opt.lr = scheduled_lr(tc.lr, steps, total_steps, tc.warmup_steps, tc.lr_decay)
            train_step(model, batch.to(device), opt, **step_options(tc))
            n_seen += len(batch)
            steps += 1
            if tc.eval_every and steps % tc.eval_every == 0 and steps % steps_per_epoch:
                stop = validate(epoch)
                if stop:
                    break
        if stop or validate(epoch):
            log(f"early stop in epoch {epoch} (best: epoch {best['epoch']}, step {best['step']})")
            break
    # Callers that continue training (the online worker) get the base lr and trainable tables.
    opt.lr = tc.lr
    set_embeddings_trainable(model, True)
    model.load_state_dict(best["state"])
    return JointResult(
        opt, best["epoch"], epochs_run, best["metrics"], n_seen, steps,
        time.perf_counter() - t0, best["step"], history,
    )  # fmt: skip


def oracle_columns(path: str | Path, n_rows: int) -> dict[str, np.ndarray] | None:
    """The simulator's true ``p_click`` / ``p_conversion`` of a file, when it has them."""
    files = parquet_files(path)
    names = set(pq.ParquetFile(files[0]).schema_arrow.names)
    if not {"p_click", "p_conversion"} <= names:
        return None
    cols = [pq.read_table(f, columns=["p_click", "p_conversion"]) for f in files]
    pc = np.concatenate([c.column("p_click").to_numpy() for c in cols]).astype(np.float64)
    pv = np.concatenate([c.column("p_conversion").to_numpy() for c in cols]).astype(np.float64)
    return {"p_click": pc, "p_conversion": pv} if pc.size == n_rows else None


def evaluate(
    model: MultiTaskModel,
    ds: BatchSource,
    device: torch.device,
    batch_size: int = 8192,
    oracle: dict[str, np.ndarray] | None = None,
    gauc: bool = True,
) -> dict[str, float]:
    """AUC / logloss / CTCVR (and GAUC when ``gauc`` and the data has users) of ``model``
    on ``ds``, plus the oracle's metrics when ``oracle`` is given."""
    p = predict(model, eval_batches(ds, batch_size), device)
    return prediction_metrics(p, oracle, gauc)


def prediction_metrics(
    p: Predictions, oracle: dict[str, np.ndarray] | None = None, gauc: bool = True
) -> dict[str, float]:
    """The metrics of :func:`evaluate` from predictions already made."""
    user = p.user if gauc else None
    out = dict(evaluate_predictions(p.p_ctr, p.p_cvr, p.click, p.conversion, user))
    if oracle is not None:
        out.update(oracle_metrics(oracle["p_click"], oracle["p_conversion"], p.click, p.conversion))
    return out


def nonzero_params(model: MultiTaskModel) -> int:
    """Parameters actually used: dense counts all; sparse sharing counts the masks' union."""
    if not isinstance(model, SparseSharing):
        return sum(p.numel() for p in model.parameters())
    n = sum(
        p.numel()
        for name, p in model.named_parameters()
        if not name.endswith(".weight") or name.startswith("embeddings")
    )
    for lay in model.masked_layers():
        union = torch.stack([lay.mask(t) for t in TASKS]).amax(0)
        n += int(union.sum())
    return n


def model_report(model: MultiTaskModel) -> dict[str, Any]:
    """Density per task, shared fraction, parameter counts and (sparse sharing) the masks'
    per-layer sharing report."""
    masks = model.masks()
    share = sharing_report(masks) if masks else None
    out: dict[str, Any] = {
        f"density_{t}": share["total"][f"density_{t}"] if share else 1.0 for t in TASKS
    }
    out["shared_fraction"] = share["total"]["shared_fraction"] if share else 1.0
    out["nonzero_params"] = nonzero_params(model)
    out["total_params"] = sum(p.numel() for p in model.parameters())
    if share:
        out["sharing"] = share
    return out
