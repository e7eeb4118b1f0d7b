#!/usr/bin/env python
"""Benchmark: dense masked MLP vs exported sparse subnetwork (latency and parameter memory).

Builds ``nn.Linear``-initialised MLPs (default ``300 -> 256 -> 128 -> 64 -> 1``), prunes them
by magnitude to each ``--densities`` value, exports them with :func:`lt4rec.sparse.export_task`
and measures, in the same process with calls interleaved, the median latency per call at each
batch size and the bytes of stored parameters. Predictions are checked against the dense
masked network (max abs diff printed; the run fails if it exceeds 1e-5).

    .venv/bin/python ops/bench/sparse_inference.py --densities 0.3 0.2 0.1 --threads 1 \
        --json-out runs/bench/sparse_inference.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from lt4rec.sparse import MaskedLayer
from lt4rec.sparse.bench import compare, markdown
from lt4rec.sparse.synthetic import magnitude_pruned_mlp

TOLERANCE = 1e-5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dims", type=int, nargs="+", default=[300, 256, 128, 64, 1])
    p.add_argument("--densities", type=float, nargs="+", default=[0.3, 0.2, 0.1])
    p.add_argument("--scope", choices=["layer", "global"], default="layer")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 512])
    p.add_argument("--repeats", type=int, default=None, help="timed calls per variant")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0 = default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        help="also benchmark every task of this trained sparse_sharing checkpoint (repeatable)",
    )
    p.add_argument("--json-out", type=Path, default=None)
    p.add_argument("--markdown-out", type=Path, default=None)
    args = p.parse_args(argv)
    if len(args.dims) < 2 or any(d < 1 for d in args.dims):
        p.error("--dims needs at least two widths, all >= 1")
    if any(not 0 < d <= 1 for d in args.densities):
        p.error("--densities must be in (0, 1]")
    if any(b < 1 for b in args.batch_sizes):
        p.error("--batch-sizes must be >= 1")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Compare every density; returns ``{case name: compare() result}``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict[str, Any] = {}
    for density in args.densities:
        layers = magnitude_pruned_mlp(args.dims, density, seed=args.seed, scope=args.scope)
        name = f"mlp {'-'.join(map(str, args.dims))} {args.scope} {density:.0%}"
        results[name] = compare(
            layers, batch_sizes=args.batch_sizes, repeats=args.repeats, device=args.device
        )
    for path in args.checkpoint:
        for task, layers in checkpoint_layers(path).items():
            results[f"{path.stem} {task}"] = compare(
                layers, batch_sizes=args.batch_sizes, repeats=args.repeats, device=args.device
            )
    return results


def checkpoint_layers(path: Path) -> dict[str, list[MaskedLayer]]:
    """Every task's masked MLP of a trained model that exports them (``sparse_sharing``)."""
    from checkpoints.format import load_checkpoint
    from lt4rec.data.batch import TASKS

    model = load_checkpoint(path).build_model()
    export = getattr(model, "export_task_layers", None)
    if export is None:
        raise ValueError(f"{path}: model {type(model).__name__} has no export_task_layers")
    return {t: export(t) for t in TASKS}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        results = run(args)
    except (OSError, ValueError) as exc:  # missing / corrupt checkpoint, bad model
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = markdown(results)
    print(table)
    worst = max(
        d
        for r in results.values()
        for b in r["batches"].values()
        for d in b["max_abs_diff"].values()
    )
    for name, r in results.items():
        for bs, b in r["batches"].items():
            lat = b["latency_ratio"]
            best = max(lat["sparse_latency"], lat["sparse_memory"])
            ok = best >= 2 or r["memory_ratio"]["vs_dense_masked"] >= 2
            print(
                f"{name} batch {bs}: latency {best:.2f}x, memory "
                f"{r['memory_ratio']['vs_dense_masked']:.2f}x lower than dense masked "
                f"-> target (>= 2x latency or memory) {'met' if ok else 'NOT met'}; "
                f"latency-mode formats {b['sparse_latency_formats']}"
            )
    for path, text in ((args.json_out, json.dumps(results, indent=2)), (args.markdown_out, table)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")
    if worst > TOLERANCE:
        print(f"error: exported predictions differ by {worst:.2e} > {TOLERANCE}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
