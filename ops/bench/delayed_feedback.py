"""Streaming delayed-feedback benchmark: Pre-trained, Vanilla, FNW, ES-DFM, Oracle on the simulator.

Usage (repository root, shared venv; no Kafka needed)::

    nice -n 10 .venv/bin/python ops/bench/delayed_feedback.py --impressions 200000 --days 6 \\
        --pretrain-days 3 --seeds 0 1 2 --out runs/bench/delayed

Per seed (data seed = model seed): simulate; replay the events through the real joiner
engine once per policy (``es_dfm``, ``fnw``; in memory, hour by hour:
``ops/bench/delayed_streams.py``), writing the Parquet archive; pre-train the product's
model (IMP tickets + joint training) and the ES-DFM heads on the first ``--pretrain-days``
of the archive; then every method streams the remaining hours from the same pre-trained
model (``ops/bench/delayed_protocol.py``). Prints and writes (``OUT/summary.json``,
``OUT/summary.md``) AUC, PR-AUC, NLL and RI-AUC = (AUC - AUC_vanilla) / (AUC_oracle -
AUC_vanilla) per task, weighted by hourly counts, mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import delayed_protocol as proto
import delayed_streams

from lt4rec.config import AppConfig, load_app_config
from lt4rec.data import FeatureSpec
from lt4rec.data.simulator import simulate
from lt4rec.train.feedback_rows import targets_for
from lt4rec.train.heads_fit import heads_report, pretrain_heads

DEFAULTS = [  # a small sparse_sharing model; every --set comes after these
    "data.hash_buckets=20011", "data.batch_size=1024", "model.embedding_dim=8",
    "model.bottom=[128, 64]", "model.tower=[32]", "train.threads=1",
    "prune.rewind_step=50",
]  # fmt: skip
TASKS = ("cvr", "ctcvr", "ctr")


def run_seed(args: argparse.Namespace, cfg: AppConfig, seed: int, work: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    sim_cfg = replace(cfg.sim, seed=seed, impressions=args.impressions, days=args.days)
    sim_dir = work / f"sim-s{seed}"
    simulate(sim_cfg, sim_dir)
    cfg = replace(cfg, train=replace(cfg.train, seed=seed))
    streams = delayed_streams.join_streams(sim_dir, cfg.joiner, ("es_dfm", "fnw"),
                                           work / f"archive-s{seed}")  # fmt: skip
    t_join = time.perf_counter() - t0
    sim_table = pq.read_table([sim_dir / f"{s}.parquet" for s in ("train", "valid", "test")])
    spec = FeatureSpec.load(sim_dir / "spec.json")
    data = proto.load_archive(work / f"archive-s{seed}", sim_table, spec, cfg, args.pretrain_days)
    model, fit = proto.pretrain(cfg, data)
    pre = torch.from_numpy(data.pre)
    wait = cfg.joiner.es_dfm_wait_s
    targets = targets_for(cfg.train.cvr_loss)
    heads = pretrain_heads(
        data.ds.subset(pre), data.times.take(pre), data.schema, wait, cfg.feedback, targets
    )
    rest = torch.from_numpy(np.flatnonzero(data.hour >= data.hours[0]))
    head_metrics = heads_report(heads, data.ds.subset(rest), data.times.take(rest), wait)
    out: dict[str, Any] = {"seed": seed, "join_seconds": t_join, "pretrain": fit,
                           "heads": head_metrics, "methods": {},
                           "stream_examples": {p: len(s) for p, s in streams.items()},
                           "delivery_lag_min": delivery_lags(streams)}  # fmt: skip
    for m in args.methods:
        res = proto.run_method(m, model, data, streams, cfg, heads, args.batch_size, args.lr)
        out["methods"][m] = res
        w = res["weighted"]
        print(f"seed {seed} {m:>14}: " + " ".join(
            f"{t} auc={w[f'{t}_auc']:.4f} nll={w[f'{t}_nll']:.4f}" for t in TASKS)
            + f" ({res['seconds']:.0f}s)", flush=True)  # fmt: skip
    out["seconds"] = time.perf_counter() - t0
    return out


def delivery_lags(streams: dict[str, Any]) -> dict[str, list[float]]:
    """Minutes from an example's label time to its emission, p50 / p90 / p99, per
    policy and kind (what the watermark adds to the policy's own wait)."""
    out = {}
    for p, s in streams.items():
        for kind, code in (("fresh", 1), ("delayed_positive", 2)):
            lag = (s.emit_ts - s.label_ts)[s.kind == code] / 60_000.0
            if lag.size:
                out[f"{p}/{kind}"] = [round(float(q), 2) for q in np.percentile(lag, [50, 90, 99])]
    return out


def ri_auc(m: dict[str, float], van: dict[str, float], ora: dict[str, float], t: str) -> float:
    gap = ora[f"{t}_auc"] - van[f"{t}_auc"]
    return (m[f"{t}_auc"] - van[f"{t}_auc"]) / gap if gap != 0 else float("nan")


def aggregate(runs: list[dict[str, Any]], methods: list[str], kind: str) -> dict[str, Any]:
    """Mean / std over seeds of every metric (``kind``: weighted or pooled) and RI-AUC."""
    out: dict[str, Any] = {}
    for m in methods:
        vals: dict[str, list[float]] = {}
        for r in runs:
            met = dict(r["methods"][m][kind])
            if "vanilla" in r["methods"] and "oracle" in r["methods"]:
                for t in TASKS:
                    met[f"{t}_ri_auc"] = ri_auc(met, r["methods"]["vanilla"][kind],
                                                r["methods"]["oracle"][kind], t)  # fmt: skip
            for k, v in met.items():
                vals.setdefault(k, []).append(v)
        out[m] = {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0)
                  for k, v in vals.items()}  # fmt: skip
    return out


def table(agg: dict[str, Any], title: str) -> str:
    cols = [(t, m) for t in TASKS for m in ("auc", "pr_auc", "nll", "ri_auc")]
    head = "| method | " + " | ".join(f"{t.upper()} {m.replace('_', '-').upper()}"
                                      for t, m in cols) + " |"  # fmt: skip
    lines = [f"**{title}**", "", head, "|" + "---|" * (len(cols) + 1)]
    for m, v in agg.items():
        cells = []
        for t, k in cols:
            mean, std = v.get(f"{t}_{k}", (float("nan"), 0.0))
            cells.append(f"{mean:.4f} ± {std:.4f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def targets_check(agg: dict[str, Any]) -> list[str]:
    """The issue's target on the delayed task (CVR): ES-DFM RI-AUC >= 0.3, and ES-DFM
    better than FNW and Vanilla on AUC and NLL."""
    lines = []
    for m in ("es_dfm", "es_dfm_online"):
        if m not in agg or "fnw" not in agg or "vanilla" not in agg:
            continue
        for t in ("cvr", "ctcvr"):
            e, f, v = agg[m], agg["fnw"], agg["vanilla"]
            ri = e[f"{t}_ri_auc"][0]
            auc_ok = e[f"{t}_auc"][0] > max(f[f"{t}_auc"][0], v[f"{t}_auc"][0])
            nll_ok = e[f"{t}_nll"][0] < min(f[f"{t}_nll"][0], v[f"{t}_nll"][0])
            ok = ri >= 0.3 and auc_ok and nll_ok
            lines.append(f"- {m} {t.upper()}: RI-AUC {ri:.3f} (≥ 0.3), AUC > FNW & Vanilla: "
                         f"{auc_ok}, NLL < FNW & Vanilla: {nll_ok} -> "
                         f"**{'met' if ok else 'NOT met'}**")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--impressions", type=int, default=200_000)
    ap.add_argument("--days", type=int, default=6)
    ap.add_argument("--pretrain-days", type=int, default=3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--methods", nargs="+", default=list(proto.METHODS), choices=proto.METHODS)
    ap.add_argument("--batch-size", type=int, default=256, help="streaming micro-batch")
    ap.add_argument("--lr", type=float, default=1e-3, help="streaming Adam learning rate")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="config override section.key=value (repeatable)")  # fmt: skip
    ap.add_argument("--out", default="runs/bench/delayed")
    args = ap.parse_args(argv)
    if args.pretrain_days >= args.days:
        ap.error("--pretrain-days must be < --days")
    cfg = load_app_config(None, [*DEFAULTS, *args.overrides])
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [run_seed(args, cfg, s, out / "work") for s in args.seeds]
    summary = {"args": vars(args), "runs": runs,
               "weighted": aggregate(runs, args.methods, "weighted"),
               "pooled": aggregate(runs, args.methods, "pooled")}  # fmt: skip
    cmd = " ".join(["nice -n 10 .venv/bin/python ops/bench/delayed_feedback.py",
                    *(argv if argv is not None else sys.argv[1:])])  # fmt: skip
    md = [f"`{cmd}`", ""]
    md.append(table(summary["weighted"], "Hourly metrics weighted by hourly counts"))
    md.append(table(summary["pooled"], "Pooled over all evaluation hours"))
    md += ["Targets (seed means, weighted):", *targets_check(summary["weighted"])]
    text = "\n".join(md) + "\n"
    print(text)
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
