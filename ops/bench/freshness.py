"""Freshness: a conversion event entering Kafka -> the first optimiser step that used it.

Usage (repository root, shared venv, the broker of ``ops/kafka/kafka.sh``)::

    nice -n 10 .venv/bin/python ops/bench/freshness.py --rate 1000 --seconds 60

Live traffic, joiner and worker all run at once:

1. a generator process produces ``--rate`` events/s (impressions, clicks 0.2-2 s after 25 % of
   them, conversions 0.2-2 s after 30 % of the clicks), each stamped with the wall clock as
   its event time when it is sent; features are rows of a small simulated log;
2. the joiner (``lt4rec streamer``, ``wait_full``: a conversion makes its example final at
   once) runs as a child process on fresh topics;
3. the worker (:class:`~streamer.worker.WorkerDaemon`, defaults: time cut, ``max_wait_ms``
   1000, batch 512, default model) runs in this process; for every trained example with a
   conversion it records ``end of the step - label_ts`` (``label_ts`` is the conversion's
   event time = when it was produced).

Prints p50 / p90 / p99 / max over the conversions of the measured span (after
``--warmup`` seconds); target p99 < 10 s at 1k events/s.
"""

from __future__ import annotations

import argparse
import heapq
import json
import multiprocessing as mp
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from lt4rec.config import AppConfig, DataConfig, ModelConfig, SimConfig, load_app_config, to_dict
from streamer.kafka.admin import ensure_topics
from streamer.worker import WorkerDaemon, WorkerOptions
from streamer.worker.synthetic import base_checkpoint


def generate(bootstrap: str, topics: dict[str, str], rate: float, seconds: float,
             features: list[dict[str, Any]], seed: int) -> None:  # fmt: skip
    """Produce live events at ``rate`` events/s for ``seconds`` (runs in its own process)."""
    from lt4rec.config import KafkaConfig
    from streamer.kafka.producer import make_producer

    prod = make_producer(KafkaConfig(bootstrap=bootstrap, linger_ms=5), "fresh-gen")
    rng = random.Random(seed)
    per_imp = 1 + 0.25 + 0.25 * 0.3  # events per impression
    imp_rate = rate / per_imp
    due: list[tuple[float, int, str, str]] = []  # (time, n, kind, impression id)
    start = time.time()
    n = sent = 0
    while time.time() - start < seconds:
        now = time.time()
        target = int((now - start) * imp_rate)
        while n < target:
            iid = f"f{seed}-{n:09d}"
            row = features[n % len(features)]
            body = {"event": "impression", "impression_id": iid, "ts": int(now * 1000),
                    "user_id": row["user_id"], "item_id": row["item_id"],
                    "features": row["features"]}  # fmt: skip
            prod.send(topics["impressions"], key=iid.encode(), value=json.dumps(body).encode())
            sent += 1
            if rng.random() < 0.25:
                heapq.heappush(due, (now + rng.uniform(0.2, 2.0), n, "click", iid))
            n += 1
        while due and due[0][0] <= now:
            _, k, kind, iid = heapq.heappop(due)
            body = {"event": kind, "impression_id": iid, "ts": int(time.time() * 1000)}
            prod.send(topics[kind + "s"], key=iid.encode(), value=json.dumps(body).encode())
            sent += 1
            if kind == "click" and rng.random() < 0.3:
                heapq.heappush(due, (time.time() + rng.uniform(0.2, 2.0), k, "conversion", iid))
        time.sleep(0.005)
    prod.flush()
    prod.close()
    print(f"generator: {sent} events in {time.time() - start:.1f}s "
          f"({sent / (time.time() - start):,.0f}/s)", flush=True)  # fmt: skip


def feature_rows(sim: Path) -> list[dict[str, Any]]:
    from streamer.replay import read_table

    table, spec = read_table(sim)
    feats = [c for c in spec.feature_columns if c not in ("user_id", "item_id", spec.time)]
    out = []
    for r in table.to_pylist():
        out.append({"user_id": str(r["user_id"]), "item_id": str(r["item_id"]),
                    "features": {f: r[f] for f in feats if r[f] is not None}})  # fmt: skip
    return out


def config(args: argparse.Namespace, work: Path, ckpt: Path) -> tuple[AppConfig, Path]:
    base = f"bench.fresh.{uuid.uuid4().hex[:8]}"
    data = to_dict(AppConfig())
    data["kafka"].update(bootstrap=args.bootstrap, group_id=f"{base}.joiner")
    data["topics"].update(impressions=f"{base}.imp", clicks=f"{base}.clk",
                          conversions=f"{base}.cnv", examples=f"{base}.ex", dlq=f"{base}.dlq",
                          partitions=args.partitions)  # fmt: skip
    data["store"]["url"] = f"sqlite:///{work / 'joiner.db'}"
    data["archive"]["dir"] = str(work / "archive")
    data["registry"].update(url=f"sqlite:///{work / 'registry.db'}", dir=str(work / "models"),
                            keep_last=2)  # fmt: skip
    data["metrics"]["progress_interval_s"] = 10.0
    data["worker"].update(group_id=f"{base}.worker", init_checkpoint=str(ckpt),
                          max_wait_ms=args.max_wait_ms, threads=args.threads)  # fmt: skip
    path = work / "fresh.toml"
    path.write_text(tomli_w.dumps(data))
    return load_app_config(path), path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=1000.0, help="events per second")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--max-wait-ms", type=int, default=1000, help="worker.max_wait_ms")
    ap.add_argument("--threads", type=int, default=1, help="worker torch threads")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args(argv)
    from lt4rec.data.simulator import simulate

    with tempfile.TemporaryDirectory(prefix="bench-fresh-") as tmp:
        work = Path(tmp)
        simulate(SimConfig(impressions=20_000, days=1, seed=3), work / "sim")
        ckpt = base_checkpoint(work / "sim", work / "base.ckpt", ModelConfig(), DataConfig(),
                               density=(0.29, 0.16))  # fmt: skip
        cfg, path = config(args, work, ckpt)
        ensure_topics(cfg.kafka, cfg.topics)
        joiner = subprocess.Popen([sys.executable, "-m", "lt4rec_cli.main", "streamer",
                                   "--config", str(path)])  # fmt: skip
        lat: list[tuple[float, float]] = []  # (conversion event time s, freshness s)
        conv_col = None

        def on_trained(cut: Any, result: Any, t_end: float) -> None:
            nonlocal conv_col
            if conv_col is None:
                conv_col = list(worker.start.holder.encoder.columns.names).index("conversion")
            for e in cut.examples:
                if e.values[conv_col] == 1:
                    lat.append((e.label_ts / 1000.0, t_end - e.label_ts / 1000.0))

        worker = WorkerDaemon(cfg, WorkerOptions(on_trained=on_trained))
        th = threading.Thread(target=worker.run, daemon=True)
        th.start()
        time.sleep(5.0)  # joiner and worker join their groups
        topics = {"impressions": cfg.topics.impressions, "clicks": cfg.topics.clicks,
                  "conversions": cfg.topics.conversions}  # fmt: skip
        t0 = time.time()
        gen = mp.Process(target=generate, args=(args.bootstrap, topics, args.rate, args.seconds,
                                                feature_rows(work / "sim"), 1))  # fmt: skip
        gen.start()
        gen.join()
        time.sleep(8.0)  # let the last conversions through
        worker.request_stop()
        th.join(120)
        joiner.send_signal(signal.SIGTERM)
        joiner.wait(60)
    span = [f for ts, f in lat if ts >= t0 + args.warmup and ts <= t0 + args.seconds - 2]
    q = np.percentile(span, [50, 90, 99]) if span else [float("nan")] * 3
    result = {"rate": args.rate, "seconds": args.seconds, "conversions": len(span),
              "p50_s": float(q[0]), "p90_s": float(q[1]), "p99_s": float(q[2]),
              "max_s": float(max(span)) if span else float("nan"),
              "max_wait_ms": args.max_wait_ms}  # fmt: skip
    print(f"freshness over {len(span)} conversions at {args.rate:,.0f} events/s: "
          f"p50 {q[0]:.2f}s p90 {q[1]:.2f}s p99 {q[2]:.2f}s max {result['max_s']:.2f}s "
          f"(target p99 < 10 s)")  # fmt: skip
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
