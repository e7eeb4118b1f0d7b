"""Pre-training ES-DFM's heads on final labels with their event times (the joiner's archive).

Every archive row is one impression with its final labels and the times of its click and
conversion. With the ``es_dfm`` waiting window ``c`` (``joiner.es_dfm_wait_s``) they tell
exactly what the stream showed of that impression (:mod:`lt4rec.train.feedback_rows`): a
label whose event time is ``<= ts + c`` was in the ``fresh`` example, a later one came as a
``delayed_positive``. Per target (``ctr``: all rows; ``cvr``: clicked rows; ``ctcvr``: all
rows, label click ∧ conversion):

* ``dp`` label = positive and its event time ``> ts + c`` (a delayed positive), on all rows
  of the target;
* ``tn`` label = truly negative, on the rows whose first observation was negative
  (true negatives and delayed positives).

This is the reference's ``tn_dp_pretrain`` data and ``delay_tn_dp_loss``
(github.com/ThyrixYang/es_dfm ``src/data.py``, ``src/loss.py``): mean BCE of ``dp`` over
the target's rows plus mean BCE of ``tn`` over its observed negatives. No Kafka, no IO
beyond the table given: the worker calls :func:`pretrain_heads` (or loads its state).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch
from torch.nn import functional as F

from lt4rec.config.data import DataConfig
from lt4rec.config.feedback import FeedbackConfig
from lt4rec.data.batch import Batch, FieldSchema
from lt4rec.data.dataset import EncodedDataset
from lt4rec.data.encode import encode_table
from lt4rec.data.normalizer import Normalizer
from lt4rec.data.spec import DataError, FeatureSpec
from lt4rec.metrics.ranking import auc
from lt4rec.models.delay_heads import DelayHeads
from lt4rec.train.loop import embedding_row_grads
from lt4rec.train.optim import TaskMaskedAdam


@dataclass(frozen=True)
class DelayTimes:
    """Event times of N impressions (ms); -1 where there is no (attributed) event."""

    ts: torch.Tensor  # [N] int64 impression time
    click_ts: torch.Tensor  # [N] int64, valid where click == 1
    conversion_ts: torch.Tensor  # [N] int64, valid where conversion == 1

    def take(self, idx: torch.Tensor) -> DelayTimes:
        """The times of rows ``idx`` ([M] int64 or a bool mask [N])."""
        return DelayTimes(self.ts[idx], self.click_ts[idx], self.conversion_ts[idx])


def delay_times(table: pa.Table, time: str = "ts") -> DelayTimes:
    """``ts`` / ``click_ts`` / ``conversion_ts`` of an archive (or simulator) table."""
    cols = {}
    for name in (time, "click_ts", "conversion_ts"):
        if name not in table.column_names:
            raise DataError(f"delay times: the table has no {name!r} column")
        col = table.column(name).to_numpy(zero_copy_only=False)
        cols[name] = torch.from_numpy(
            np.nan_to_num(col.astype(np.float64), nan=-1).astype(np.int64)
        )
    return DelayTimes(cols[time], cols["click_ts"], cols["conversion_ts"])


@dataclass(frozen=True)
class HeadLabels:
    """Labels of one target's two heads on N rows."""

    rows: torch.Tensor  # [N] bool: rows of the target (dp head)
    dp: torch.Tensor  # [N] float32: delayed positive
    obs_neg: torch.Tensor  # [N] bool: first observation negative (tn head)
    tn: torch.Tensor  # [N] float32: true negative


def head_labels(
    times: DelayTimes, click: torch.Tensor, conversion: torch.Tensor, wait_s: int, target: str
) -> HeadLabels:
    """The ``dp`` / ``tn`` labels of ``target`` for impressions with final labels."""
    cut = times.ts + int(wait_s) * 1000  # [N] ms: the fresh example's cut
    clicked = click > 0
    converted = clicked & (conversion > 0)
    if target == "ctr":
        rows, pos, pos_ts = torch.ones_like(clicked), clicked, times.click_ts
    elif target in ("cvr", "ctcvr"):
        rows = clicked if target == "cvr" else torch.ones_like(clicked)
        pos, pos_ts = converted, times.conversion_ts
    else:
        raise ValueError(f"unknown heads target {target!r}")
    late = pos & (pos_ts > cut)
    return HeadLabels(rows, late.float(), rows & ~(pos & ~late), (~pos).float())


def masked_bce(z: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``sum(w * bce) / #(w > 0)``: the weighted mean over the rows with a weight."""
    row = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    return (row * w).sum() / (w > 0).sum().clamp_min(1)


def heads_step(
    heads: DelayHeads,
    opt: TaskMaskedAdam,
    batch: Batch,
    loss_of: Callable[[dict[str, torch.Tensor]], torch.Tensor],
) -> float:
    """One Adam step of ``heads`` on ``loss_of(logits)`` (lazy rows for the embeddings)."""
    heads.train()
    opt.zero_grad()
    loss = loss_of(heads(batch))
    loss.backward()
    opt.step(None, embedding_row_grads(heads))
    return float(loss.detach())


def make_heads(schema: FieldSchema, cfg: FeedbackConfig, targets: Sequence[str]) -> DelayHeads:
    """Untrained heads of ``cfg``'s architecture (seeded by ``cfg.heads_seed``)."""
    torch.manual_seed(cfg.heads_seed)
    return DelayHeads(schema, targets, cfg.heads_embedding_dim, cfg.heads_hidden)


@torch.no_grad()
def _init_bias(heads: DelayHeads, labels: dict[str, HeadLabels]) -> None:
    """Output biases at the logits of the labels' base rates: calibrated from step 0."""
    out = heads.mlp[-1]
    assert isinstance(out, torch.nn.Linear)
    for t, lab in labels.items():
        for kind, rows, y in (("dp", lab.rows, lab.dp), ("tn", lab.obs_neg, lab.tn)):
            rate = float(y[rows].mean()) if bool(rows.any()) else 0.5
            rate = min(max(rate, 1e-4), 1 - 1e-4)
            out.bias[heads.outputs.index(f"{t}_{kind}")] = math.log(rate / (1 - rate))


def pretrain_heads(
    ds: EncodedDataset,
    times: DelayTimes,
    schema: FieldSchema,
    wait_s: int,
    cfg: FeedbackConfig | None = None,
    targets: Sequence[str] = ("ctr", "cvr"),
) -> DelayHeads:
    """Heads for ``targets`` trained on final-label rows ``ds`` with event ``times``."""
    cfg = cfg or FeedbackConfig()
    if len(times.ts) != len(ds):
        raise ValueError(f"{len(times.ts)} delay times for {len(ds)} rows")
    heads = make_heads(schema, cfg, targets)
    labels = {t: head_labels(times, ds.click, ds.conversion, wait_s, t) for t in targets}
    _init_bias(heads, labels)
    opt = TaskMaskedAdam(dict(heads.named_parameters()), lr=cfg.heads_lr)
    gen = torch.Generator().manual_seed(cfg.heads_seed)
    for _ in range(cfg.heads_epochs):
        order = torch.randperm(len(ds), generator=gen)
        for start in range(0, len(ds), cfg.heads_batch_size):
            idx = order[start : start + cfg.heads_batch_size]

            def loss_of(z: dict[str, torch.Tensor], idx: torch.Tensor = idx) -> torch.Tensor:
                total = z[heads.outputs[0]].sum() * 0.0
                for t, lab in labels.items():
                    rows, neg = lab.rows[idx].float(), lab.obs_neg[idx].float()
                    total = total + masked_bce(z[f"{t}_dp"], lab.dp[idx], rows)
                    total = total + masked_bce(z[f"{t}_tn"], lab.tn[idx], neg)
                return total

            heads_step(heads, opt, ds.batch(idx), loss_of)
    heads.eval()
    return heads


def heads_data(
    table: pa.Table, spec: FeatureSpec, data: DataConfig, normalizer: Normalizer
) -> tuple[EncodedDataset, DelayTimes]:
    """Archive rows (one ``final`` row per impression) encoded, with their event times."""
    return encode_table(table, spec, data, normalizer, source="archive"), delay_times(table)


@torch.no_grad()
def heads_report(
    heads: DelayHeads, ds: EncodedDataset, times: DelayTimes, wait_s: int, batch_size: int = 8192
) -> dict[str, float]:
    """Per target: AUC and mean prediction vs rate of each head on its rows."""
    probs: dict[str, list[torch.Tensor]] = {k: [] for k in heads.outputs}
    for b in ds.batches(batch_size, shuffle=False):
        for k, v in heads.probs(b).items():
            probs[k].append(v)
    p = {k: torch.cat(v) for k, v in probs.items()}
    out: dict[str, float] = {}
    for t in heads.targets:
        lab = head_labels(times, ds.click, ds.conversion, wait_s, t)
        for kind, rows, y in (("dp", lab.rows, lab.dp), ("tn", lab.obs_neg, lab.tn)):
            pk = p[f"{t}_{kind}"][rows].numpy()
            yk = y[rows].numpy()
            out[f"{t}_{kind}_auc"] = auc(pk, yk)
            out[f"{t}_{kind}_mean_pred"] = float(pk.mean()) if pk.size else float("nan")
            out[f"{t}_{kind}_rate"] = float(yk.mean()) if yk.size else float("nan")
    return out
