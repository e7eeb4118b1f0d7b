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
import hashlib
import json
import pickle
import shutil
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
import delayed_report as report
import delayed_streams

from lt4rec.config import AppConfig, load_app_config, to_dict
from lt4rec.data import FeatureSpec
from lt4rec.data.simulator import simulate
from lt4rec.train.feedback_rows import targets_for
from lt4rec.train.heads_fit import heads_report, pretrain_heads

DEFAULTS = [  # a small sparse_sharing model; every --set comes after these
    "data.hash_buckets=20011", "data.batch_size=1024", "model.embedding_dim=8",
    "model.bottom=[128, 64]", "model.tower=[32]", "train.threads=1",
    "prune.rewind_step=50",
]  # fmt: skip
STREAM_BATCH = 100  # input events per JoinEngine.process call (one poll of live traffic)


def joined(
    args: argparse.Namespace, cfg: AppConfig, seed: int, work: Path
) -> tuple[Path, dict[str, Any]]:
    """Simulate and join (or reuse ``work/s{seed}-{config hash}/`` from an earlier run):
    the directory (``sim/``, ``archive/``) and the policies' streams."""
    sim_cfg = replace(cfg.sim, seed=seed, impressions=args.impressions, days=args.days)
    key = json.dumps([to_dict(sim_cfg), to_dict(cfg.joiner), STREAM_BATCH], sort_keys=True)
    d = work / f"s{seed}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    cache = d / "streams.pkl"
    if cache.is_file():
        with open(cache, "rb") as f:
            return d, pickle.load(f)
    shutil.rmtree(d, ignore_errors=True)
    simulate(sim_cfg, d / "sim")
    streams = delayed_streams.join_streams(d / "sim", cfg.joiner, ("es_dfm", "fnw"),
                                           d / "archive", STREAM_BATCH)  # fmt: skip
    tmp = cache.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(streams, f)
    tmp.replace(cache)
    return d, streams


def run_seed(args: argparse.Namespace, cfg: AppConfig, seed: int, work: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    cfg = replace(cfg, train=replace(cfg.train, seed=seed))
    d, streams = joined(args, cfg, seed, work)
    t_join = time.perf_counter() - t0
    sim_table = pq.read_table([d / "sim" / f"{s}.parquet" for s in ("train", "valid", "test")])
    spec = FeatureSpec.load(d / "sim" / "spec.json")
    data = proto.load_archive(d / "archive", sim_table, spec, cfg, args.pretrain_days)
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
            f"{t} auc={w[f'{t}_auc']:.4f} nll={w[f'{t}_nll']:.4f}" for t in report.TASKS)
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


def command_of(a: dict[str, Any]) -> str:
    """The command line that reproduces a run with arguments ``a``."""
    parts = [
        "nice -n 10 .venv/bin/python ops/bench/delayed_feedback.py",
        f"--impressions {a['impressions']} --days {a['days']}",
        f"--pretrain-days {a['pretrain_days']} --seeds {' '.join(map(str, a['seeds']))}",
    ]
    if list(a["methods"]) != list(proto.METHODS):
        parts.append("--methods " + " ".join(a["methods"]))
    if a["batch_size"] != 256 or a["lr"] != 1e-2:
        parts.append(f"--batch-size {a['batch_size']} --lr {a['lr']}")
    parts += [f"--set {o}" for o in a["overrides"]]
    parts.append(f"--out {a['out']}")
    return " ".join(parts)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--impressions", type=int, default=200_000)
    ap.add_argument("--days", type=int, default=6)
    ap.add_argument("--pretrain-days", type=int, default=3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--methods", nargs="+", default=list(proto.METHODS), choices=proto.METHODS)
    ap.add_argument("--batch-size", type=int, default=256, help="streaming micro-batch")
    ap.add_argument("--lr", type=float, default=1e-2, help="streaming Adam learning rate")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="config override section.key=value (repeatable)")  # fmt: skip
    ap.add_argument("--out", default="runs/bench/delayed",
                    help="output dir; OUT/work keeps simulations and streams")  # fmt: skip
    ap.add_argument("--from-json", metavar="SUMMARY",
                    help="only re-render OUT/summary.md from an earlier summary.json")  # fmt: skip
    args = ap.parse_args(argv)
    if args.from_json:
        old = json.loads(Path(args.from_json).read_text())
        a = old["args"]
        summary = report.summarize(old["runs"], a["methods"], a, command_of(a))
        text = report.render(summary)
        print(text)
        Path(args.from_json).write_text(json.dumps(summary, indent=2, default=str) + "\n")
        Path(args.from_json).with_name("summary.md").write_text(text)
        return 0
    if args.pretrain_days >= args.days:
        ap.error("--pretrain-days must be < --days")
    cfg = load_app_config(None, [*DEFAULTS, *args.overrides])
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [run_seed(args, cfg, s, out / "work") for s in args.seeds]
    summary = report.summarize(runs, args.methods, vars(args), command_of(vars(args)))
    text = report.render(summary)
    print(text)
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
