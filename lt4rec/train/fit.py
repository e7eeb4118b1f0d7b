"""``run_fit``: load Parquet data, (for sparse sharing) find tickets, train, evaluate, save.

Flow: encode train/valid/test with the spec (normalizer fitted on train only) -> build the
model from ONE seed -> for ``sparse_sharing`` search each task's ticket by IMP on validation
(:mod:`lt4rec.pruning.imp`; the CVR ticket may use its own rate, ``prune.cvr_rate``) and
install the masks on the shared initial weights, or with ``prune.joint_start = "rewind"`` on
the tickets' merged step-k states (:mod:`lt4rec.pruning.rewind`) -> joint
training for ``train.epochs`` epochs, keeping the epoch with the best validation
CTR AUC + CVR AUC -> test metrics (and oracle metrics when the test file has the simulator's
``p_click`` / ``p_conversion`` columns) -> JSON, plots and checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from lt4rec.config import AppConfig, to_dict
from lt4rec.data import FeatureSpec, field_schema, load_parquet, parquet_files
from lt4rec.data.batch import TASKS
from lt4rec.data.dataset import EncodedDataset
from lt4rec.metrics.evaluate import evaluate_predictions, oracle_metrics
from lt4rec.models import build_model
from lt4rec.models.blocks import MultiTaskModel
from lt4rec.models.sparse_sharing import SparseSharing
from lt4rec.pruning.imp import RoundResult, Ticket, find_ticket
from lt4rec.pruning.rewind import merge_rewind_states
from lt4rec.report.sharing import sharing_report
from lt4rec.train.loop import make_optimizer, predict, train_step
from lt4rec.train.progress import log, track


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r} but CUDA is not available")
    return dev


def _oracle(path: str | Path, n_rows: int) -> dict[str, np.ndarray] | None:
    files = parquet_files(path)
    names = set(pq.ParquetFile(files[0]).schema_arrow.names)
    if not {"p_click", "p_conversion"} <= names:
        return None
    cols = [pq.read_table(f, columns=["p_click", "p_conversion"]) for f in files]
    pc = np.concatenate([c.column("p_click").to_numpy() for c in cols]).astype(np.float64)
    pv = np.concatenate([c.column("p_conversion").to_numpy() for c in cols]).astype(np.float64)
    return {"p_click": pc, "p_conversion": pv} if pc.size == n_rows else None


def _valid_score(m: dict[str, float]) -> float:
    s = sum(m[k] for k in ("ctr_auc", "cvr_auc") if m[k] == m[k])
    return float(s)


def _nonzero_params(model: MultiTaskModel) -> int:
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


def run_fit(
    cfg: AppConfig,
    train: str | Path,
    valid: str | Path,
    test: str | Path,
    features: str | Path,
    json_out: str | Path | None = None,
    plots_dir: str | Path | None = None,
    checkpoint: str | Path | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Train ``cfg.model.name`` and return (and optionally write) its metrics dict."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    t_start = time.perf_counter()
    spec = FeatureSpec.load(features)
    train_ds, norm = load_parquet(train, spec, cfg.data)
    valid_ds, _ = load_parquet(valid, spec, cfg.data, norm)
    test_ds, _ = load_parquet(test, spec, cfg.data, norm)
    schema = field_schema(spec, cfg.data)
    load_s = time.perf_counter() - t_start
    log(
        f"loaded train={len(train_ds)} valid={len(valid_ds)} test={len(test_ds)} rows "
        f"in {load_s:.1f}s"
    )

    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, schema).to(device)
    init_state = {k: v.detach().clone() for k, v in model.state_dict().items()}  # shared init
    gen = torch.Generator().manual_seed(cfg.train.seed)
    bs = cfg.data.batch_size

    def eval_batches(ds: EncodedDataset) -> Any:
        return ds.batches(max(bs, 8192), shuffle=False)

    tickets: dict[str, Ticket] = {}
    t_prune = time.perf_counter()
    if isinstance(model, SparseSharing) and cfg.prune.rounds > 0:
        for task in TASKS:
            frac = cfg.prune.cvr_round_fraction if task == "cvr" else cfg.prune.round_fraction
            steps = max(1, round(frac * cfg.train.epochs * len(train_ds) / bs))

            def report(r: RoundResult, task: str = task) -> None:
                log(
                    f"prune {task} round {r.round}: density={r.density:.3f} "
                    f"valid_auc={r.valid_auc:.4f} ({r.seconds:.1f}s)"
                )

            pcfg = cfg.prune
            if task == "cvr" and pcfg.cvr_rate is not None:
                pcfg = dataclasses.replace(pcfg, rate=pcfg.cvr_rate)
            tickets[task] = find_ticket(
                task,
                model,
                init_state,
                lambda: train_ds.batches(bs, shuffle=True, generator=gen),
                lambda: eval_batches(valid_ds),
                pcfg,
                cfg.train,
                device,
                steps,
                on_round=report,
            )
        if cfg.prune.joint_start == "rewind":
            model.load_state_dict(merge_rewind_states(init_state, tickets))
        else:
            model.load_state_dict(init_state)
        for task, ticket in tickets.items():
            model.set_masks(task, dict(ticket.mask))
    prune_s = time.perf_counter() - t_prune

    opt = make_optimizer(model, cfg.train.lr, cfg.train.weight_decay)
    best: tuple[float, int, dict[str, torch.Tensor], dict[str, float]] | None = None
    t_train = time.perf_counter()
    n_seen = 0
    steps_per_epoch = (len(train_ds) + bs - 1) // bs
    epochs_run = 0
    for epoch in range(cfg.train.epochs):
        epochs_run = epoch + 1
        batches = train_ds.batches(bs, shuffle=True, generator=gen)
        for batch in track(
            batches, steps_per_epoch, f"{cfg.model.name} epoch {epoch + 1}", progress
        ):
            train_step(
                model,
                batch.to(device),
                opt,
                cvr_loss=cfg.train.cvr_loss,
                cvr_weight=cfg.train.cvr_weight,
            )
            n_seen += len(batch)
        p = predict(model, eval_batches(valid_ds), device)
        vm = evaluate_predictions(p.p_ctr, p.p_cvr, p.click, p.conversion)
        log(f"epoch {epoch + 1}: valid ctr_auc={vm['ctr_auc']:.4f} cvr_auc={vm['cvr_auc']:.4f}")
        if best is None or _valid_score(vm) > best[0]:
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best = (_valid_score(vm), epoch, state, vm)
        elif cfg.train.patience and epoch - best[1] >= cfg.train.patience:
            log(f"early stop after epoch {epoch + 1} (best epoch {best[1] + 1})")
            break
    train_s = time.perf_counter() - t_train
    assert best is not None
    model.load_state_dict(best[2])

    p = predict(model, eval_batches(test_ds), device)
    metrics: dict[str, Any] = {"model": cfg.model.name, "seed": cfg.train.seed}
    metrics.update(evaluate_predictions(p.p_ctr, p.p_cvr, p.click, p.conversion, p.user))
    oracle = _oracle(test, len(test_ds))
    if oracle is not None:
        metrics.update(
            oracle_metrics(oracle["p_click"], oracle["p_conversion"], p.click, p.conversion)
        )
    metrics.update({f"valid_{k}": v for k, v in best[3].items() if k.endswith(("auc", "logloss"))})
    masks = model.masks()
    share = sharing_report(masks) if masks else None
    for t in TASKS:
        metrics[f"density_{t}"] = share["total"][f"density_{t}"] if share else 1.0
    metrics["shared_fraction"] = share["total"]["shared_fraction"] if share else 1.0
    metrics["nonzero_params"] = _nonzero_params(model)
    metrics["total_params"] = sum(p_.numel() for p_ in model.parameters())
    metrics["best_epoch"] = best[1] + 1
    metrics["epochs_run"] = epochs_run
    metrics["train_seconds"] = train_s
    metrics["prune_seconds"] = prune_s
    metrics["load_seconds"] = load_s
    metrics["fit_seconds"] = time.perf_counter() - t_start
    metrics["examples_per_s"] = n_seen / train_s if train_s > 0 else 0.0
    metrics["train_rows"] = len(train_ds)
    metrics["device"] = str(device)
    metrics["torch_threads"] = torch.get_num_threads()
    if share:
        metrics["sharing"] = share
    if tickets:
        metrics["pruning"] = {
            t: {"selected_round": k.selected_round, "rounds": [r.__dict__ for r in k.rounds]}
            for t, k in tickets.items()
        }
    metrics["config"] = to_dict(cfg)
    if json_out is not None:
        out = Path(json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if plots_dir is not None:
        from lt4rec.report.plots import plot_mask_overlap, plot_pruning_curve

        d = Path(plots_dir)
        if tickets:
            plot_pruning_curve(
                {t: [r.__dict__ for r in k.rounds] for t, k in tickets.items()},
                d / "pruning_curve.png",
            )
        if share:
            plot_mask_overlap(share["layers"], TASKS, d / "mask_overlap.png")
    if checkpoint is not None:
        from checkpoints.format import save_checkpoint

        save_checkpoint(
            checkpoint,
            model,
            config=cfg,
            spec=spec.to_dict(),
            normalizer=norm.to_dict(),
            optimizer=opt.state_dict(),
            metrics={k: v for k, v in metrics.items() if isinstance(v, int | float | str)},
            step=n_seen // bs,
            extra={"train_rows": len(train_ds)},
        )
    return metrics
