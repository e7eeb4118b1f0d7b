#!/usr/bin/env python
"""Side-by-side ablations of one model's tuned profile, scored on the validation split only.

    nice -n 10 .venv/bin/python ops/bench/ablate.py --impressions 1000000 --model sparse_sharing \
        --seeds 0 1 2 --out runs/ablate --set train.threads=1 \
        --variant base= --variant shared_output=model.output_layer=shared ...

Each ``--variant NAME=SET1,SET2`` is the model's tuned profile plus those ``--set``
overrides (empty = the profile itself). Every variant x seed is one fit given the validation
file as its "test" file (as in ``tune.py``: the test split is never read), cached as
``OUT/<model>/<variant>-seed<S>.json``. Prints a Markdown table of the validation AUCs
(mean ± std over seeds) and each variant's paired difference to the first variant per seed.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import offline  # ops/bench/offline.py: data preparation shared with the benchmark


def run(args: argparse.Namespace, data: Path, sets: list[str], seed: int) -> dict[str, Any]:
    """One fit with the model's profile + ``sets``; validation metrics of the kept state."""
    from lt4rec.config import load_app_config

    cfg = load_app_config(None, [*args.sets, f"model.name={args.model}", *sets,
                                 f"train.seed={seed}"])  # fmt: skip
    keep = ("ctr_auc", "cvr_auc", "ctcvr_auc", "density_ctr", "density_cvr", "best_epoch",
            "best_step", "shared_fraction", "sharing", "pruning")  # fmt: skip
    _, kept, seconds = offline.validation_fit(cfg, data, keep)
    return {**kept, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", choices=["sim", "tencent"], default="sim")
    p.add_argument("--impressions", type=int, default=1_000_000)
    p.add_argument("--days", type=int, default=None)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--model", default="sparse_sharing", choices=offline.MODELS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--variant", action="append", default=[], metavar="NAME=SET1,SET2")
    p.add_argument("--out", type=Path, default=Path("runs/ablate"))
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=V")
    args = p.parse_args(argv)
    from lt4rec.config import load_app_config

    variants = [(v.split("=", 1)[0], [x for x in v.split("=", 1)[1].split(",") if x])
                for v in args.variant or ["base="]]  # fmt: skip
    data = offline.prepare_data(args, args.dataset, load_app_config(None, args.sets))
    folder = args.out / args.model
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, Any]]] = {}
    for name, sets in variants:
        for seed in args.seeds:
            path = folder / f"{name}-seed{seed}.json"
            if not path.is_file():
                print(f"[fit] {args.model} {name} seed {seed}: {shlex.join(sets)}", flush=True)
                path.write_text(json.dumps({"sets": sets, **run(args, data, sets, seed)}) + "\n")
            results.setdefault(name, []).append(json.loads(path.read_text()))
    base = results[variants[0][0]]
    command = "python ops/bench/ablate.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    lines = [f"`{command}`", "", "| variant | settings | valid CTR AUC | valid CVR AUC | "
             f"Δ CTR vs {variants[0][0]} | Δ CVR vs {variants[0][0]} | density ctr / cvr | "
             "best epoch |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, sets in variants:
        rs = results[name]
        cells = []
        for key in ("ctr_auc", "cvr_auc"):
            m, s, _ = offline.mean_std([r[key] for r in rs])
            cells.append(f"{m:.4f} ± {s:.4f}")
        for key in ("ctr_auc", "cvr_auc"):
            d = [r[key] - b[key] for r, b in zip(rs, base, strict=True)]
            m, s, _ = offline.mean_std(d)
            cells.append(f"{m:+.4f} ± {s:.4f} ({sum(x > 0 for x in d)}/{len(d)} seeds up)")
        dens = f"{rs[0].get('density_ctr', 1):.3f} / {rs[0].get('density_cvr', 1):.3f}"
        epoch = offline.mean_std([r["best_epoch"] for r in rs])[0]
        lines.append(f"| {name} | `{' '.join(sets) or 'profile'}` | {' | '.join(cells)} | "
                     f"{dens} | {epoch:.1f} |")  # fmt: skip
    text = "\n".join(lines) + "\n"
    (folder / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
