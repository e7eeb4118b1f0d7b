"""Soak: the hostile-input suite N times in a row, each run under a timeout (no hang allowed).

Usage (repository root, the shared services of ``ops/test.sh`` running)::

    nice -n 10 .venv/bin/python ops/bench/hostile_soak.py --runs 20 --timeout 300

Each run is ``OPS_TEST_LINT=0 bash ops/test.sh tests/streamer/integration/test_hostile.py``
in a new process group; a run that outlives ``--timeout`` seconds is killed (its whole group)
and counted as a hang. Prints one line per run (outcome, seconds, the peak RSS the test
measured) and a summary; exit status 0 only when every run passed. Not a timed test: the
figures go to docs/benchmarks.md with the command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST = "tests/streamer/integration/test_hostile.py"


def one_run(timeout_s: float, log: Path) -> tuple[str, float, float | None]:
    """(outcome: passed | failed | hang, seconds, peak RSS MiB or None) of one run."""
    env = {**os.environ, "OPS_TEST_LINT": "0"}
    cmd = ["bash", "ops/test.sh", TEST, "-q", "-s", "-p", "no:cacheprovider"]
    t0 = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this run started, by its id
            proc.wait()
            return "hang", time.monotonic() - t0, None
    took = time.monotonic() - t0
    found = re.search(r"hostile: peak RSS (\d+) MiB", log.read_text(errors="replace"))
    rss = float(found.group(1)) if found else None
    return ("passed" if code == 0 else "failed"), took, rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    ap.add_argument("--logs", type=Path, default=REPO / "runs" / "bench" / "hostile-soak")
    args = ap.parse_args()
    args.logs.mkdir(parents=True, exist_ok=True)
    results = []
    for i in range(1, args.runs + 1):
        outcome, took, rss = one_run(args.timeout, args.logs / f"run-{i:02d}.log")
        results.append({"run": i, "outcome": outcome, "seconds": round(took, 1), "rss_mib": rss})
        print(f"run {i:2d}/{args.runs}: {outcome:6s} {took:6.1f}s  peak RSS {rss} MiB", flush=True)
    outcomes = [r["outcome"] for r in results]
    secs = [r["seconds"] for r in results]
    rss_all = [r["rss_mib"] for r in results if r["rss_mib"] is not None]
    summary = {
        "runs": args.runs, "timeout_s": args.timeout,
        "passed": outcomes.count("passed"), "failed": outcomes.count("failed"),
        "hangs": outcomes.count("hang"), "seconds_min": min(secs), "seconds_max": max(secs),
        "peak_rss_mib_max": max(rss_all, default=None),
    }  # fmt: skip
    (args.logs / "summary.json").write_text(json.dumps({"summary": summary, "runs": results}))
    print(json.dumps(summary))
    return 0 if summary["passed"] == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
