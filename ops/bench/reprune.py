#!/usr/bin/env python
"""Re-pruning job: wall time and peak RSS per archive size, side by side in one run.

    nice -n 10 .venv/bin/python ops/bench/reprune.py --sizes 250000 1000000 --out runs/bench/reprune

For each size: simulate (cached under OUT/data), backfill an archive of that many rows
(``streamer.archive.backfill``), then run ``lt4rec prune`` in a fresh child process (so its
``ru_maxrss`` is its own) with a window covering the whole archive. Prints time per million
archived rows, peak RSS, and the RSS ratio between the largest and the smallest window: a
streamed window keeps RSS flat (target: time < 10 min per million rows, RSS independent of the
window size).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def prepare(size: int, out: Path, days: int) -> Path:
    """A backfilled archive of ``size`` simulated impressions (cached)."""
    from lt4rec.config import JoinerConfig, SimConfig
    from lt4rec.data.simulator import SPLITS, simulate
    from streamer.archive.backfill import backfill

    sim_dir = out / "data" / f"sim-{size}"
    archive = out / "data" / f"archive-{size}"
    if not (archive / "_complete").is_dir():
        if not (sim_dir / "spec.json").is_file():
            print(f"[data] simulating {size} impressions", flush=True)
            simulate(SimConfig(impressions=size, days=days, seed=0), sim_dir)
        print(f"[data] backfilling the archive ({size} rows)", flush=True)
        files = [sim_dir / f"{s}.parquet" for s in SPLITS]
        backfill(files, archive, JoinerConfig(), partitions=4)
    return sim_dir


def run_prune(size: int, out: Path, days: int, sets: list[str]) -> dict:
    sim_dir = out / "data" / f"sim-{size}"
    work = out / f"run-{size}-{int(time.time())}"
    args = [
        "--set", f"archive.dir={out / 'data' / f'archive-{size}'}",
        "--set", f"registry.url=sqlite:///{work / 'registry.db'}",
        "--set", f"registry.dir={work / 'models'}",
        "--set", f"reprune.spec={sim_dir / 'spec.json'}",
        "--set", "reprune.label_delay_s=0",
        "--set", f"reprune.window_days={days + 1}",
        *[x for s in sets for x in ("--set", s)],
    ]  # fmt: skip
    from datetime import date, timedelta

    from lt4rec.config import SimConfig

    end = date.fromisoformat(SimConfig().start) + timedelta(days=days)  # the log's last day
    cmd = [sys.executable, "-m", "lt4rec_cli.main", "prune", "--json", "--end", str(end), *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 3):
        sys.exit(f"prune failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout)
    return {
        "rows": size,
        "status": report["status"],
        "train_rows": report["rows"]["train"],
        "wall_s": wall,
        "job_s": report["seconds"],
        "s_per_million": report["seconds"] / size * 1e6,
        "peak_rss_mb": report["peak_rss_mb"],
        "holdout_ctr_auc": report["candidate"].get("ctr_auc"),
        "holdout_cvr_auc": report["candidate"].get("cvr_auc"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[250_000, 1_000_000])
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("runs/bench/reprune"))
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=V")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        prepare(size, args.out, args.days)
    results = [run_prune(size, args.out, args.days, args.sets) for size in args.sizes]
    print(f"\ncommand: {shlex.join(sys.argv)}")
    print(
        "| archive rows | train rows | job s | s / 1M rows | peak RSS MB | holdout CTR / CVR AUC |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        auc = f"{r['holdout_ctr_auc']:.4f} / {r['holdout_cvr_auc']:.4f}"
        print(f"| {r['rows']:,} | {r['train_rows']:,} | {r['job_s']:.0f} "
              f"| {r['s_per_million']:.0f} | {r['peak_rss_mb']:.0f} | {auc} |")  # fmt: skip
    small, big = results[0], results[-1]
    ratio = big["peak_rss_mb"] / small["peak_rss_mb"]
    print(f"\nRSS ratio {big['rows']:,} / {small['rows']:,} rows: {ratio:.2f} "
          f"(window {big['rows'] / small['rows']:.1f}x larger)")  # fmt: skip
    (args.out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
