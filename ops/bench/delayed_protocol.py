"""The streaming delayed-feedback protocol of ``ops/bench/delayed_feedback.py``.

ES-DFM paper, Section 5.1 (github.com/ThyrixYang/es_dfm ``src/stream_train_test.py``): a
model pre-trained on the first days is trained hour by hour on what the stream delivered
during hour ``t`` and evaluated on the impressions of hour ``t + 1`` with their true eventual
labels (the archive's ``final`` rows); hourly metrics are averaged weighted by the hour's
sample count (impressions for CTR / CTCVR, clicks for CVR). Every method starts from the
same pre-trained model (product pipeline: IMP tickets, then joint training) and trains with
the product's step (:func:`lt4rec.train.loop.train_step`, masks frozen) exactly as the
online worker calls it: ``weights`` -> ``train_step`` -> ``update``.
"""

from __future__ import annotations

import copy
import dataclasses
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from lt4rec.config import AppConfig
from lt4rec.data import FeatureSpec, encode_table, field_schema, fit_normalizer
from lt4rec.data.batch import Batch, FieldSchema
from lt4rec.data.dataset import EncodedDataset
from lt4rec.metrics import auc, logloss, pr_auc
from lt4rec.models.blocks import MultiTaskModel
from lt4rec.models.delay_heads import DelayHeads
from lt4rec.train.delayed import KIND_CODES, FeedbackLoss, StreamMeta, make_feedback_loss
from lt4rec.train.heads_fit import DelayTimes, delay_times
from lt4rec.train.loop import make_optimizer, step_options, train_step
from lt4rec.train.steps import init_model, install_tickets, search_tickets, train_joint
from streamer.archive.writer import read_archive

HOUR_MS = 3_600_000
METHODS = ("pretrained", "vanilla", "fnw", "es_dfm", "es_dfm_online", "oracle")
STREAM_OF = {"vanilla": "es_dfm", "fnw": "fnw", "es_dfm": "es_dfm", "es_dfm_online": "es_dfm"}
CPU = torch.device("cpu")


@dataclass(frozen=True)
class BenchData:
    """The archive (one final row per impression, time order), encoded."""

    ds: EncodedDataset
    hour: np.ndarray  # [N] epoch hour of the impression
    times: DelayTimes
    row_of: dict[str, int]  # impression_id -> row
    schema: FieldSchema
    pre: np.ndarray  # rows of the pre-training days
    hours: tuple[int, int]  # [first, last) streaming hours trained on; evaluation is +1


def load_archive(
    archive_dir: Path, sim_table: pa.Table, spec: FeatureSpec, cfg: AppConfig, pre_days: int
) -> BenchData:
    """Encode the archive; check its labels against the simulator's (the join is faithful)."""
    table = read_archive(archive_dir)
    table = table.take(pa.array(np.argsort(table.column("ts").to_numpy(), kind="stable")))
    sim = {i: r for r, i in enumerate(sim_table.column("impression_id").to_pylist())}
    ids = table.column("impression_id").to_pylist()
    if len(ids) != len(sim) or not all(i in sim for i in ids):
        raise SystemExit(f"archive rows ({len(ids)}) are not the {len(sim)} impressions")
    idx = np.array([sim[i] for i in ids])
    for col in ("click", "conversion"):
        want = sim_table.column(col).to_numpy()[idx]
        if not np.array_equal(table.column(col).to_numpy(), want):
            raise SystemExit(f"archive {col} labels differ from the simulator's")
    ts = table.column("ts").to_numpy()
    hour = ts // HOUR_MS
    day0 = int(ts.min()) // (24 * HOUR_MS) * 24
    pre = np.flatnonzero(hour < day0 + 24 * pre_days)
    norm = fit_normalizer(table.take(pa.array(pre)), spec)
    ds = encode_table(table, spec, cfg.data, norm, source=str(archive_dir))
    hours = (day0 + 24 * pre_days, int(hour.max()))
    return BenchData(ds, hour, delay_times(table), {i: r for r, i in enumerate(ids)},
                     field_schema(spec, cfg.data), pre, hours)  # fmt: skip


def pretrain(cfg: AppConfig, data: BenchData) -> tuple[MultiTaskModel, dict[str, Any]]:
    """The product's offline fit on the pre-training days (last 10 % = validation)."""
    n_valid = max(1, len(data.pre) // 10)
    train = data.ds.subset(torch.from_numpy(data.pre[:-n_valid]))
    valid = data.ds.subset(torch.from_numpy(data.pre[-n_valid:]))
    model, init = init_model(cfg, data.schema, CPU)
    gen = torch.Generator().manual_seed(cfg.train.seed)
    tickets = search_tickets(cfg, model, init, train, valid, CPU, gen)
    install_tickets(cfg, model, init, tickets)
    joint = train_joint(cfg, model, train, valid, CPU, gen, progress=False)
    return model, {"valid": joint.valid_metrics, "seconds": joint.seconds}


def _stream_batches(
    data: BenchData, s: Any, lo: int, hi: int, bs: int
) -> list[tuple[Batch, StreamMeta]]:
    out = []
    for a in range(lo, hi, bs):
        b = min(a + bs, hi)
        rows = torch.tensor([data.row_of[i] for i in s.impression_id[a:b]])
        batch = dataclasses.replace(
            data.ds.batch(rows),
            click=torch.from_numpy(s.click[a:b]),
            conversion=torch.from_numpy(s.conversion[a:b] * s.click[a:b]),
        )
        elapsed = torch.from_numpy((s.label_ts[a:b] - s.ts[a:b]) / 1000.0).float()
        out.append((batch, StreamMeta(torch.from_numpy(s.kind[a:b]), elapsed)))
    return out


def _oracle_batches(data: BenchData, hour: int, bs: int) -> list[tuple[Batch, StreamMeta]]:
    rows = np.flatnonzero(data.hour == hour)
    out = []
    for a in range(0, len(rows), bs):
        r = torch.from_numpy(rows[a : a + bs])
        kind = torch.full((len(r),), KIND_CODES["final"], dtype=torch.int64)
        out.append((data.ds.batch(r), StreamMeta(kind, torch.zeros(len(r)))))
    return out


def make_loss(method: str, cfg: AppConfig, heads: DelayHeads | None) -> FeedbackLoss | None:
    cvr = cfg.train.cvr_loss
    if method in ("pretrained", "oracle"):
        return None if method == "pretrained" else make_feedback_loss("bce", cvr_loss=cvr)
    if method.startswith("es_dfm"):
        fb = dataclasses.replace(cfg.feedback, heads_online=method == "es_dfm_online")
        wait = cfg.joiner.es_dfm_wait_s
        heads = copy.deepcopy(heads)
        return make_feedback_loss("es_dfm", heads=heads, wait_s=wait, cfg=fb, cvr_loss=cvr)
    return make_feedback_loss(method, cvr_loss=cvr)


@torch.no_grad()
def _predict(model: MultiTaskModel, data: BenchData, rows: np.ndarray) -> np.ndarray:
    model.eval()
    z = model(data.ds.batch(torch.from_numpy(rows)))
    return torch.stack([torch.sigmoid(z["ctr"]), torch.sigmoid(z["cvr"])], 1).double().numpy()


def run_method(
    method: str, model0: MultiTaskModel, data: BenchData, streams: dict[str, Any],
    cfg: AppConfig, heads: DelayHeads | None, bs: int, lr: float,
) -> dict[str, Any]:  # fmt: skip
    """Stream ``method`` through the hours; per-hour metrics and pooled predictions."""
    t0 = time.perf_counter()
    # each method's dropout draws depend on the seed and the method only, not on which
    # methods ran before it in this process (a re-run of a subset reproduces its numbers)
    torch.manual_seed(cfg.train.seed * 1_000_003 + zlib.crc32(method.encode()))
    model = copy.deepcopy(model0)
    opt = make_optimizer(model, lr, cfg.train.weight_decay)
    loss = make_loss(method, cfg, heads)
    s = streams.get(STREAM_OF.get(method, ""))
    hourly, preds, rows_all = [], [], []
    trained = 0
    for h in range(*data.hours):
        if method == "oracle":
            batches = _oracle_batches(data, h, bs)
        elif s is not None:
            lo, hi = np.searchsorted(s.hour, [h, h + 1])
            batches = _stream_batches(data, s, int(lo), int(hi), bs)
        else:
            batches = []
        for batch, meta in batches:
            assert loss is not None
            w = loss.weights(model, batch, meta)
            train_step(model, batch, opt, weights=w, **step_options(cfg.train))
            loss.update(model, batch, meta)
            trained += len(batch)
        rows = np.flatnonzero(data.hour == h + 1)
        if len(rows):
            p = _predict(model, data, rows)
            hourly.append(
                hour_metrics(p, data.ds.click[rows].numpy(), data.ds.conversion[rows].numpy())
            )
            preds.append(p)
            rows_all.append(rows)
    p = np.concatenate(preds)
    r = np.concatenate(rows_all)
    pooled = hour_metrics(p, data.ds.click[r].numpy(), data.ds.conversion[r].numpy())
    return {"weighted": weighted(hourly), "pooled": pooled, "hours": len(hourly),
            "trained_examples": trained, "seconds": time.perf_counter() - t0}  # fmt: skip


def hour_metrics(p: np.ndarray, click: np.ndarray, conv: np.ndarray) -> dict[str, float]:
    """AUC / PR-AUC / NLL per task and its row count (CVR: clicked rows)."""
    c, v = click > 0.5, (conv > 0.5) & (click > 0.5)
    tasks = {"ctr": (p[:, 0], c), "cvr": (p[c, 1], v[c]), "ctcvr": (p[:, 0] * p[:, 1], v)}
    out: dict[str, float] = {}
    for t, (score, y) in tasks.items():
        out[f"{t}_n"] = float(len(y))
        out[f"{t}_auc"] = auc(score, y) if len(y) else float("nan")
        out[f"{t}_pr_auc"] = pr_auc(score, y) if len(y) else float("nan")
        out[f"{t}_nll"] = logloss(score, y) if len(y) else float("nan")
    return out


def weighted(hourly: list[dict[str, float]]) -> dict[str, float]:
    """Per-hour metrics averaged with the hour's row count (hours where a metric is nan,
    e.g. AUC without a positive, are left out of that metric's average)."""
    out = {}
    for t in ("ctr", "cvr", "ctcvr"):
        n = np.array([h[f"{t}_n"] for h in hourly])
        for m in ("auc", "pr_auc", "nll"):
            x = np.array([h[f"{t}_{m}"] for h in hourly])
            ok = ~np.isnan(x) & (n > 0)
            out[f"{t}_{m}"] = float(np.average(x[ok], weights=n[ok])) if ok.any() else float("nan")
    return out
