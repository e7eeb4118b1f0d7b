"""The re-pruning job (``lt4rec prune``): new lottery tickets on a window of the archive.

1. plan the window (:mod:`streamer.reprune.window`) and load the model in service (the
   baseline, also the source of the feature spec);
2. stream the train split (bounded memory), fit the dense normalizer in one pass, hold the
   (small) valid and held-out splits in memory;
3. the same training steps as ``lt4rec fit`` (:mod:`lt4rec.train.steps`): one seeded init,
   per-task IMP with rewinding chosen on **valid**, joint training;
4. score candidate and baseline on the SAME held-out rows with the same metrics (each with its
   own encoding), apply the gate (:mod:`streamer.reprune.gate`);
5. register the candidate (kind ``repruned``, parent = baseline, data range = train split)
   and publish it only if the gate holds; a gated-out candidate is ``rejected`` with the
   reason, a failed run is recorded as ``failed``. The system in service is untouched unless
   the new version is published, and publishing is one registry transaction.
"""

from __future__ import annotations

import resource
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from checkpoints import Checkpoint, Notice, Registry, publish, save_checkpoint, verify
from checkpoints.format import CorruptCheckpointError
from lt4rec.config import AppConfig, DataConfig
from lt4rec.data import DataError, FeatureSpec, Normalizer, field_schema
from lt4rec.data.stream import ParquetStream, fit_normalizer_stream
from lt4rec.train.steps import (
    evaluate,
    init_model,
    install_tickets,
    model_report,
    resolve_device,
    search_tickets,
    train_joint,
)
from streamer.reprune.gate import gate
from streamer.reprune.window import Window, plan_window

Log = Callable[[str], None]
KEYS = ("ctr_auc", "cvr_auc", "ctr_logloss", "cvr_logloss", "ctcvr_auc", "rows", "clicks")


class RepruneError(RuntimeError):
    """The run cannot produce a candidate (no data, no spec...); recorded as failed."""


@dataclass
class RepruneReport:
    status: str  # published | registered | rejected | failed
    reason: str
    version: int | None = None
    baseline: int | None = None
    window: dict[str, Any] = field(default_factory=dict)
    candidate: dict[str, float] = field(default_factory=dict)
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    notice: Notice | None = None


def _baseline(reg: Registry, log: Log, holdout_start: int) -> tuple[int, Checkpoint] | None:
    """The version to beat: the one in service, or — when it has trained on held-out rows (an
    online version fine-tuned past ``holdout_start``) — its newest ancestor that has not, so
    that neither model has seen the gate's labels. Unusable files are skipped."""
    current = reg.current()
    info = current.version if current is not None else None
    while info is not None:
        if info.data_last_ts is None or info.data_last_ts < holdout_start:
            try:
                ckpt = verify(info)
            except (CorruptCheckpointError, OSError) as exc:
                log(f"reprune: version {info.version} is unusable as the baseline: {exc}")
            else:
                if current is not None and info.version != current.version.version:
                    log(f"reprune: baseline = version {info.version}, the newest ancestor of "
                        f"version {current.version.version} in service that has not trained "
                        "on the held-out rows")  # fmt: skip
                return info.version, ckpt
        info = reg.get(info.parent) if info.parent is not None else None
    return None


def _spec(cfg: AppConfig, base: Checkpoint | None) -> FeatureSpec:
    if base is not None and base.spec is not None:
        return FeatureSpec.from_dict(base.spec)
    if cfg.reprune.spec:
        return FeatureSpec.load(cfg.reprune.spec)
    raise RepruneError("no model is published yet and reprune.spec (a feature spec) is not set")


def _split(cfg: AppConfig, w: Window, spec: FeatureSpec, data: DataConfig, norm: Normalizer | None,
           which: str) -> ParquetStream:  # fmt: skip
    rc = cfg.reprune
    flt = getattr(w, which)
    return ParquetStream(
        w.files, spec, data, norm, flt, shuffle_rows=rc.shuffle_rows, read_rows=rc.read_rows
    )


def _score_baseline(
    cfg: AppConfig, w: Window, base: Checkpoint, device: torch.device
) -> tuple[dict[str, float], int]:
    """The baseline's held-out metrics with ITS OWN spec, hashing and normalizer."""
    assert base.spec is not None and base.normalizer is not None
    schema = base.field_schema()
    data = replace(cfg.data, hash_buckets=schema.hash_buckets, multi_max_len=schema.multi_max_len)
    norm = Normalizer.from_dict(base.normalizer)
    rows = _split(cfg, w, FeatureSpec.from_dict(base.spec), data, norm, "holdout").materialize()
    model = base.build_model().to(device)
    return evaluate(model, rows, device, cfg.data.batch_size, gauc=False), len(rows)  # type: ignore[arg-type]


def run_reprune(
    cfg: AppConfig,
    *,
    end: int | None = None,
    days: float | None = None,
    announce: Callable[[Notice], None] | None = None,
    log: Log = print,
) -> RepruneReport:
    """One re-pruning run; never raises for a data or training problem (see the report)."""
    t0 = time.perf_counter()
    reg = Registry(cfg.registry)
    report = RepruneReport("failed", "")
    try:
        _run(cfg, reg, report, end, days, announce, log)
    except (RepruneError, DataError, ValueError, RuntimeError, OSError) as exc:
        report.status, report.reason = "failed", f"{type(exc).__name__}: {exc}"[:1000]
        log(f"reprune: failed: {report.reason}")
        log(traceback.format_exc(limit=3))
        info = reg.record_failure(
            "repruned", report.reason, model_name=cfg.model.name, parent=report.baseline,
            metrics={"window": report.window} if report.window else None,
        )  # fmt: skip
        report.version = info.version
    finally:
        report.seconds = time.perf_counter() - t0
        report.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        reg.close()
    return report


def _run(
    cfg: AppConfig,
    reg: Registry,
    report: RepruneReport,
    end: int | None,
    days: float | None,
    announce: Callable[[Notice], None] | None,
    log: Log,
) -> None:
    w = plan_window(cfg, end, days)
    report.window = w.describe()
    log(f"reprune: window {report.window['start_utc']} .. {report.window['end_utc']} "
        f"({len(w.files)} files, labels final up to {report.window['label_cut_utc']})")  # fmt: skip
    found = _baseline(reg, log, w.holdout_start)
    base = found[1] if found else None
    report.baseline = found[0] if found else None
    spec = _spec(cfg, base)
    device = resolve_device(cfg.train.device)

    train = _split(cfg, w, spec, cfg.data, None, "train")
    train.normalizer = norm = fit_normalizer_stream(train)
    valid = _split(cfg, w, spec, cfg.data, norm, "valid").materialize()
    holdout = _split(cfg, w, spec, cfg.data, norm, "holdout").materialize()
    report.rows = {"train": len(train), "valid": len(valid), "holdout": len(holdout)}
    rc = cfg.reprune
    if len(train) < rc.min_train_rows or len(holdout) < rc.min_holdout_rows:
        raise RepruneError(f"not enough data in the window: {report.rows}")

    model, init_state = init_model(cfg, field_schema(spec, cfg.data), device)
    gen = torch.Generator().manual_seed(cfg.train.seed)
    tickets = search_tickets(cfg, model, init_state, train, valid, device, gen)
    install_tickets(cfg, model, init_state, tickets)
    joint = train_joint(cfg, model, train, valid, device, gen, progress=False)
    report.candidate = _pick(evaluate(model, holdout, device, cfg.data.batch_size, gauc=False))
    if base is not None:
        metrics, n = _score_baseline(cfg, w, base, device)
        if n != len(holdout):
            raise RepruneError(
                f"baseline and candidate saw different held-out rows: {n}, {len(holdout)}"
            )
        report.baseline_metrics = _pick(metrics)
    ok, reason = gate(report.candidate, report.baseline_metrics or None, rc)
    shape = model_report(model)
    summary = {
        **{f"holdout_{k}": v for k, v in report.candidate.items()},
        **{f"baseline_{k}": v for k, v in report.baseline_metrics.items()},
        "density_ctr": shape["density_ctr"], "density_cvr": shape["density_cvr"],
        "label_cutoff_ts": w.label_cut, "train_end_ts": w.train_end, "best_epoch": joint.best_epoch,
        "train_rows": len(train), "gate": reason, "baseline_version": report.baseline,
    }  # fmt: skip
    info = reg.save(
        "repruned",
        lambda path: save_checkpoint(
            path,
            model,
            config=cfg,
            spec=spec.to_dict(),
            normalizer=norm.to_dict(),
            optimizer=joint.optimizer.state_dict(),
            metrics=summary,
            step=joint.steps,
            extra={
                "window": report.window,
                "label_cutoff_ts": w.label_cut,
                "train_end_ts": w.train_end,
                "baseline": report.baseline,
            },
        ),
        model_name=cfg.model.name,
        parent=report.baseline,
        metrics=summary,
        data_range=(w.start, w.train_end),
    )
    report.version = info.version
    if not ok:
        reg.mark(info.version, "rejected", reason)
        report.status, report.reason = "rejected", reason
    elif not rc.publish:
        report.status, report.reason = "registered", f"{reason} (reprune.publish = false)"
    else:
        report.notice = publish(reg, info.version, reason)
        report.status, report.reason = "published", reason
        if announce is not None:
            try:  # published is published: a notice that cannot be sent stays pending
                announce(report.notice)
            except Exception as exc:
                report.reason += f" (notice pending, re-sent by the next publisher: {exc})"
    log(f"reprune: version {info.version} {report.status}: {report.reason}")


def _pick(m: dict[str, float]) -> dict[str, float]:
    return {k: float(m[k]) for k in KEYS if k in m}
