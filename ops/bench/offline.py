#!/usr/bin/env python
"""Offline benchmark: every model x seed on simulated and/or Tencent data, mean ± std table.

    nice -n 10 .venv/bin/python ops/bench/offline.py --dataset sim --impressions 200000 \
        --seeds 0 1 2 --out runs/bench/offline-200k

Every model runs with its tuned profile (``lt4rec/config/profiles.toml``, applied by
``load_app_config`` for the model's name) under ``--config`` / ``--set``. Data are generated
once and cached under ``OUT/data/`` (or ``--data-dir``); each run writes
``OUT/runs/<dataset>/<model>-seed<S>.json`` and its test predictions ``.pred.npz`` and is
skipped when both exist (resumable: re-run the same command after an interruption). Runs are
sequential and in-process (2 cores). For ``sparse_sharing`` a checkpoint is kept and its task
subnetworks are exported and timed against the dense masked network
(:mod:`lt4rec.sparse.bench`). The targets are checked on seed means against the best other
model of each task, and per seed by a paired bootstrap over the test rows against that seed's
best other model. Results: ``OUT/summary.json`` and ``OUT/summary.md`` (a Markdown fragment
for ``docs/benchmarks.md``, with the command).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
from significance import (  # ops/bench/significance.py
    CTR_SLACK,
    CVR_MARGIN,
    MAX_DENSITY,
    ORACLE_GAP,
    mean_std,
    paired_tests,
    pooled_tests,
)

MODELS = (
    "single", "shared_bottom", "esmm", "mmoe", "ple", "cross_stitch", "aitm", "escm2",
    "sparse_sharing",
)  # fmt: skip
COLUMNS = (  # (metrics key, header, format)
    ("ctr_auc", "CTR AUC", ".4f"),
    ("cvr_auc", "CVR AUC", ".4f"),
    ("ctcvr_auc", "CTCVR AUC", ".4f"),
    ("ctr_logloss", "CTR logloss", ".4f"),
    ("cvr_logloss", "CVR logloss", ".4f"),
    ("ctr_gauc", "CTR GAUC", ".4f"),
    ("density_ctr", "density ctr", ".3f"),
    ("density_cvr", "density cvr", ".3f"),
    ("nonzero_params", "nonzero params", ",.0f"),
    ("best_epoch", "best epoch", ".1f"),
    ("best_step", "best step", ",.0f"),
    ("fit_seconds", "fit s", ".0f"),
)
ORACLE = ("oracle_ctr_auc", "oracle_cvr_auc", "oracle_ctcvr_auc")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", choices=["sim", "tencent", "both"], default="sim")
    p.add_argument("--impressions", type=int, default=1_000_000, help="simulated impressions")
    p.add_argument("--days", type=int, default=None, help="simulated days (default sim.days)")
    p.add_argument("--data-seed", type=int, default=0, help="simulator / Tencent split seed")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="model seeds")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--out", type=Path, default=Path("runs/bench/offline"))
    p.add_argument("--data-dir", type=Path, default=None, help="data cache (default OUT/data)")
    p.add_argument("--config", type=Path, default=None, help="TOML config (as `lt4rec fit`)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=V")
    p.add_argument("--no-sparse-bench", action="store_true", help="skip sparse inference timing")
    p.add_argument("--repeats", type=int, default=300, help="timed calls per sparse variant")
    p.add_argument("--boot", type=int, default=1000, help="paired bootstrap resamples")
    args = p.parse_args(argv)
    if args.impressions < 10:
        p.error("--impressions must be >= 10")
    return args


def data_root(args: argparse.Namespace) -> Path:
    """Where data sets are generated / cached: ``--data-dir``, else ``OUT/data``."""
    root = getattr(args, "data_dir", None)
    return Path(root) if root is not None else args.out / "data"


def prepare_data(args: argparse.Namespace, dataset: str, cfg: Any) -> Path:
    """Generate (or reuse) ``train/valid/test.parquet`` + ``spec.json``; return the folder."""
    if dataset == "sim":
        from lt4rec.data.simulator import simulate

        days = args.days or cfg.sim.days
        out = data_root(args) / f"sim-n{args.impressions}-d{days}-s{args.data_seed}"
        if not (out / "spec.json").is_file():
            sim = dataclasses.replace(
                cfg.sim, impressions=args.impressions, days=days, seed=args.data_seed
            )
            print(f"[data] simulating {args.impressions} impressions into {out}", flush=True)
            simulate(sim, out)
    else:
        from lt4rec.data.tencent import split_tencent

        out = data_root(args) / f"tencent-s{args.data_seed}"
        if not (out / "spec.json").is_file():
            print(f"[data] splitting the Tencent sample into {out}", flush=True)
            split_tencent(None, out, seed=args.data_seed)
    return out


def run_one(args: argparse.Namespace, data: Path, run_dir: Path, model: str, seed: int) -> dict:
    """Train one model x seed (or load its JSON when it already exists)."""
    from checkpoints.fit import save_fit
    from lt4rec.config import load_app_config
    from lt4rec.train.fit import run_fit

    json_path = run_dir / f"{model}-seed{seed}.json"
    pred_path = run_dir / f"{model}-seed{seed}.pred.npz"
    # Only the first seed's sparse_sharing checkpoint is kept (for sparse inference; ~250 MB).
    want_ckpt = model == "sparse_sharing" and seed == args.seeds[0] and not args.no_sparse_bench
    ckpt = run_dir / f"{model}-seed{seed}.ckpt" if want_ckpt else None
    if json_path.is_file() and pred_path.is_file() and (ckpt is None or ckpt.is_file()):
        print(f"[skip] {json_path} exists", flush=True)
        return dict(json.loads(json_path.read_text()))
    cfg = load_app_config(args.config, [*args.sets, f"model.name={model}", f"train.seed={seed}"])
    print(f"[fit] {model} seed {seed} on {data}", flush=True)
    start = time.perf_counter()
    result = run_fit(
        cfg, data / "train.parquet", data / "valid.parquet", data / "test.parquet",
        data / "spec.json", json_out=json_path, progress=False,
    )  # fmt: skip
    if ckpt is not None:
        save_fit(ckpt, cfg, result)
    p = result.test_predictions
    assert p is not None
    preds = {"p_ctr": p.p_ctr.astype(np.float32), "p_cvr": p.p_cvr.astype(np.float32)}
    np.savez_compressed(pred_path, **preds, click=p.click, conversion=p.conversion)
    metrics = result.metrics
    took = time.perf_counter() - start
    auc = f"ctr_auc={metrics.get('ctr_auc'):.4f} cvr_auc={metrics.get('cvr_auc'):.4f}"
    print(f"[done] {model} seed {seed}: {auc} in {took:.0f}s", flush=True)
    return dict(metrics)


def sparse_bench(args: argparse.Namespace, ckpt: Path) -> dict[str, Any]:
    """Export and time the trained sparse_sharing model's task subnetworks (cached JSON)."""
    out = ckpt.with_suffix(".sparse.json")
    if out.is_file():
        return dict(json.loads(out.read_text()))
    import torch

    from checkpoints.format import load_checkpoint
    from lt4rec.data.batch import TASKS
    from lt4rec.sparse.bench import compare

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # single-core latency, comparable across runs
    model = load_checkpoint(ckpt).build_model()
    result = {t: compare(model.export_task_layers(t), repeats=args.repeats) for t in TASKS}  # type: ignore[operator]
    torch.set_num_threads(threads)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def aggregate(runs: dict[str, list[dict]]) -> dict[str, dict[str, list[float]]]:
    """``{model: {key: [mean, std, n]}}`` over seeds for every table column and oracle key."""
    keys = [c[0] for c in COLUMNS] + list(ORACLE)
    return {m: {k: list(mean_std([r.get(k) for r in rs])) for k in keys} for m, rs in runs.items()}


def targets(agg: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """The sparse_sharing acceptance targets on seed means, against the best other model
    of each metric (CVR: + CVR_MARGIN, CTR: - CTR_SLACK) and the oracle."""
    if "sparse_sharing" not in agg:
        return {"evaluated": False}
    ss = agg["sparse_sharing"]
    out: dict[str, Any] = {"evaluated": True}
    for task, need in (("cvr", CVR_MARGIN), ("ctr", -CTR_SLACK)):
        key = f"{task}_auc"
        others = {m: a[key][0] for m, a in agg.items() if m != "sparse_sharing"}
        if not others:
            continue
        best = max(others, key=lambda m: others[m])
        out[task] = {"sparse_sharing": ss[key][0], "best_other": best,
                     "best_other_auc": others[best], "need": need,
                     "holds": ss[key][0] >= others[best] + need}  # fmt: skip
    dens = max(ss["density_ctr"][0], ss["density_cvr"][0])
    out["density"] = {"max_task_density": dens, "holds": dens <= MAX_DENSITY}
    if ss["oracle_cvr_auc"][2]:
        gap = ss["oracle_cvr_auc"][0] - ss["cvr_auc"][0]
        out["oracle_gap"] = {"cvr_gap": gap, "holds": gap <= ORACLE_GAP}
    return out


def _cell(stat: list[float], fmt: str) -> str:
    m, s, n = stat
    if n == 0:
        return "–"
    return f"{m:{fmt}} ± {s:{fmt}}" if n > 1 else f"{m:{fmt}}"


def markdown(name: str, result: dict[str, Any], command: str) -> str:
    """Markdown fragment of one dataset: table, oracle, targets, sparse inference."""
    agg, tg = result["aggregate"], result["targets"]
    lines = [f"### {name} ({result['rows']})", "", f"`{command}`", ""]
    lines.append("| model | seeds | " + " | ".join(c[1] for c in COLUMNS) + " |")
    lines.append("|---" * (len(COLUMNS) + 2) + "|")
    for model, a in agg.items():
        cells = " | ".join(_cell(a[k], f) for k, _, f in COLUMNS)
        lines.append(f"| {model} | {a['ctr_auc'][2]} | {cells} |")
    first = next(iter(agg.values()), None)
    if first and first["oracle_ctr_auc"][2]:
        ora = " | ".join(
            f"{first[f'oracle_{k}'][0]:.4f}" if k in ("ctr_auc", "cvr_auc", "ctcvr_auc") else "–"
            for k, _, _ in COLUMNS
        )
        lines.append(f"| oracle (true probabilities) | – | {ora} |")
    if tg.get("evaluated"):
        lines += ["", "Targets (seed means):"]
        for task, word in (("cvr", "+"), ("ctr", "−")):
            if task not in tg:
                continue
            c = tg[task]
            other = f"{c['best_other']} {c['best_other_auc']:.4f}"
            lines.append(
                f"- {task.upper()} AUC {c['sparse_sharing']:.4f} ≥ best other ({other}) {word} "
                f"{abs(c['need'])}: **{_yes(c['holds'])}**"
            )
        d = tg["density"]
        lines.append(f"- max task density {d['max_task_density']:.3f} ≤ {MAX_DENSITY}: "
                     f"**{_yes(d['holds'])}**")  # fmt: skip
        if "oracle_gap" in tg:
            g = tg["oracle_gap"]
            lines.append(f"- CVR AUC gap to the oracle {g['cvr_gap']:.4f} ≤ {ORACLE_GAP}: "
                         f"**{_yes(g['holds'])}**")  # fmt: skip
    paired = result.get("paired", [])
    if paired:
        lines += ["", "Paired test per seed: sparse_sharing − that seed's best other model "
                  "(by test AUC), paired bootstrap over the test rows (CVR: clicked rows), "
                  f"{paired[0]['cvr']['n_boot']} resamples; p = share of resamples below the "
                  "target margin:", "",
                  "| seed | task | best other | Δ AUC | 95 % CI | p(Δ ≤ margin) | target | "
                  "better (Δ > 0) |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for row in paired:
            for task in ("cvr", "ctr"):
                d = row[task]
                lines.append(
                    f"| {row['seed']} | {task.upper()} | {d['best_other']} | {d['diff']:+.4f} | "
                    f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] | {d['p_not_above']:.3f} | "
                    f"Δ ≥ {d['margin']:+.3f}: **{_yes(d['holds'])}** | "
                    f"{'yes' if d['diff'] > 0 else 'no'} |"
                )
        cvr_wins = [row["cvr"]["diff"] > 0 for row in paired]
        lines += ["", f"CVR: sparse_sharing better than that seed's best other model on "
                  f"{sum(cvr_wins)} of {len(cvr_wins)} seeds."]  # fmt: skip
    pooled = result.get("pooled", {})
    if pooled:
        lines += ["", "Pooled paired test: mean over seeds of sparse_sharing − the best other "
                  "model on seed means, every bootstrap resample of the test rows applied to "
                  "every seed:", "",
                  "| task | best other | seeds | mean Δ AUC | 95 % CI | p(Δ ≤ margin) | target |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for task in ("cvr", "ctr"):
            if task in pooled:
                d = pooled[task]
                lines.append(
                    f"| {task.upper()} | {d['best_other']} | {len(d['seeds'])} | "
                    f"{d['diff']:+.4f} | [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] | "
                    f"{d['p_not_above']:.3f} | Δ ≥ {d['margin']:+.3f}: **{_yes(d['holds'])}** |"
                )
    for seed, sb in result.get("sparse_inference", {}).items():
        lines += [
            "",
            f"Sparse inference of the trained sparse_sharing model (seed {seed}, 1 thread):",
        ]
        for task, r in sb.items():
            for bs, b in r["batches"].items():
                lat = b["latency_s"]
                lines.append(
                    f"- {task} (density {r['density']:.1%}), batch {bs}: dense masked "
                    f"{lat['dense_masked'] * 1e6:.0f} µs, exported "
                    f"{lat['sparse_latency'] * 1e6:.0f} µs "
                    f"({b['latency_ratio']['sparse_latency']:.2f}× faster); memory "
                    f"{r['memory_ratio']['vs_dense_masked']:.2f}× smaller; max |Δ| "
                    f"{max(b['max_abs_diff'].values()):.1e}"
                )
    return "\n".join(lines)


def _yes(ok: bool) -> str:
    return "holds" if ok else "does NOT hold"


def validation_fit(
    cfg: Any, data: Path, keep: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """One fit of ``cfg`` on ``data`` scored on VALIDATION only (the valid split is passed as
    the test split, so the test split is never read): (all metrics, the ``keep`` ones, s)."""
    from lt4rec.train.fit import run_fit

    t0 = time.perf_counter()
    res = run_fit(
        cfg, data / "train.parquet", data / "valid.parquet", data / "valid.parquet",
        data / "spec.json", progress=False,
    )  # fmt: skip
    m = res.metrics
    return m, {k: m[k] for k in keep if k in m}, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from lt4rec.config import ConfigError, load_app_config

    try:
        cfg = load_app_config(args.config, args.sets)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "python ops/bench/offline.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    datasets = ["sim", "tencent"] if args.dataset == "both" else [args.dataset]
    summary: dict[str, Any] = {"command": command, "datasets": {}}
    failures: list[str] = []
    fragments = []
    for ds in datasets:
        data = prepare_data(args, ds, cfg)
        run_dir = args.out / "runs" / data.name
        run_dir.mkdir(parents=True, exist_ok=True)
        runs: dict[str, list[dict]] = {}
        for model in args.models:
            for seed in args.seeds:
                try:
                    runs.setdefault(model, []).append(run_one(args, data, run_dir, model, seed))
                except Exception as exc:  # keep going: one broken run must not lose the rest
                    traceback.print_exc()
                    failures.append(f"{ds}/{model}/seed{seed}: {exc}")
        runs = {m: rs for m, rs in runs.items() if rs}
        agg = aggregate(runs)
        tg = targets(agg)
        res: dict[str, Any] = {"aggregate": agg, "targets": tg, "data": str(data)}
        res["paired"] = paired_tests(runs, run_dir, args.seeds, args.boot)
        res["pooled"] = pooled_tests(tg, run_dir, args.seeds, args.boot)
        train_rows = next((r[0].get("train_rows") for r in runs.values()), None)
        res["rows"] = f"{args.impressions:,} impressions" if ds == "sim" else "Tencent sample"
        res["rows"] += f", {train_rows:,} train rows" if train_rows else ""
        if "sparse_sharing" in runs and not args.no_sparse_bench:
            res["sparse_inference"] = {}
            for seed in args.seeds[:1]:  # one seed: timing, not statistics
                ckpt = run_dir / f"sparse_sharing-seed{seed}.ckpt"
                if ckpt.is_file():
                    res["sparse_inference"][str(seed)] = sparse_bench(args, ckpt)
        summary["datasets"][data.name] = res
        fragments.append(markdown(data.name, res, command))
    summary["failures"] = failures
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    text = "\n\n".join(fragments) + "\n"
    (args.out / "summary.md").write_text(text)
    print(text)
    for f in failures:
        print(f"error: run failed: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
