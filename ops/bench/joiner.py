"""Joiner throughput against a bare kafka-python consumer, and memory with many pending windows.

Usage (repository root, shared venv, the broker of ``ops/kafka/kafka.sh``)::

    nice -n 10 .venv/bin/python ops/bench/joiner.py --impressions 100000
    nice -n 10 .venv/bin/python ops/bench/joiner.py --impressions 0 --pending 1000000

1. simulate ``--impressions`` impressions (or use ``--data DIR``) and replay them into fresh,
   uniquely named topics (``--partitions``), reporting the produce rate;
2. **bare**: one kafka-python consumer (no group) reads every input record from the beginning;
3. **joiner**: :class:`~streamer.daemon.JoinerDaemon` in this process (SQLite state in a
   temporary directory, ``--flush-at-end`` semantics) consumes the same topics;
   prints both rates (records / busy seconds) and the ratio (targets: >= 0.5x bare and
   >= 20k events/s);
4. ``--pending N``: N impressions whose windows stay open (30-day click window) through a
   ``lt4rec streamer`` child process; reports its peak RSS (``ru_maxrss``).
5. ``--gc-compare R``: the joiner R times with Python's default GC and R times with the
   daemon's tuning (:func:`streamer.gctune.tune`: ``gc.freeze()`` after start-up, higher
   thresholds), alternating on the same topics (fresh group and store each), side by side.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import tomli_w

from lt4rec.config import AppConfig, KafkaConfig, SimConfig, TopicsConfig, load_app_config, to_dict
from streamer.kafka.admin import ensure_topics
from streamer.replay import load_events, make_producer, replay


def topics_for(base: str, partitions: int) -> TopicsConfig:
    return TopicsConfig(impressions=f"{base}.imp", clicks=f"{base}.clk",
                        conversions=f"{base}.cnv", examples=f"{base}.ex", dlq=f"{base}.dlq",
                        partitions=partitions)  # fmt: skip


def bare_consume(kafka: KafkaConfig, topics: TopicsConfig, total: int) -> tuple[int, float]:
    """Read ``total`` records of the input topics with a plain consumer; (records, seconds)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer: Any = KafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False,
                                  auto_offset_reset="earliest", check_crcs=kafka.check_crcs,
                                  max_poll_records=kafka.max_poll_records)  # fmt: skip
    tps = [TopicPartition(t, p) for t in topics.inputs for p in range(topics.partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    n, start = 0, None
    deadline = time.monotonic() + 600
    while n < total and time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=1000)
        if batch and start is None:
            start = time.monotonic()
        n += sum(len(v) for v in batch.values())
    seconds = time.monotonic() - (start or time.monotonic())
    consumer.close()
    return n, seconds


def app_config(kafka: KafkaConfig, topics: TopicsConfig, work: Path, **extra: Any) -> AppConfig:
    data = to_dict(AppConfig())
    data["kafka"] = {"group_id": f"{topics.impressions}.g"} | to_dict(kafka)
    data["topics"] = to_dict(topics)
    data["store"]["url"] = f"sqlite:///{work / 'state.db'}"
    data["archive"]["dir"] = str(work / "archive")
    data["metrics"]["progress_interval_s"] = 10.0
    for sec, values in extra.items():
        data[sec].update(values)
    path = work / "joiner.toml"
    path.write_text(tomli_w.dumps(data))
    return load_app_config(path)


def throughput(args: argparse.Namespace, kafka: KafkaConfig, work: Path) -> dict[str, Any]:
    from lt4rec.data.simulator import simulate
    from streamer.daemon import DaemonOptions, JoinerDaemon

    data = Path(args.data) if args.data else work / "sim"
    if not args.data:
        days = max(1, args.impressions // 100_000)
        simulate(SimConfig(impressions=args.impressions, days=days, seed=0), data)
    events = load_events(data)
    topics = topics_for(f"bench.joiner.{uuid.uuid4().hex[:8]}", args.partitions)
    ensure_topics(kafka, topics)
    rep = replay(events, kafka, topics, workers=args.workers)
    print(f"replay: {rep.events} events in {rep.seconds:.1f}s = {rep.rate:,.0f} events/s",
          flush=True)  # fmt: skip
    cpu0 = time.process_time()
    n_bare, s_bare = bare_consume(kafka, topics, rep.events)
    cpu_bare = time.process_time() - cpu0
    bare_rate = n_bare / max(s_bare, 1e-9)
    print(f"bare consumer: {n_bare} records in {s_bare:.1f}s = {bare_rate:,.0f} events/s "
          f"({n_bare / cpu_bare:,.0f} per CPU second)", flush=True)  # fmt: skip
    cfg = app_config(kafka, topics, work)
    daemon = JoinerDaemon(cfg, DaemonOptions(exit_when_idle_s=3.0, flush_at_end=True))
    cpu0 = time.process_time()
    s = daemon.run()
    cpu_join = time.process_time() - cpu0  # includes ~3 s of idle polling at the end
    join_rate = s.records / max(s.busy_seconds, 1e-9)
    print(f"joiner: {s.records} records in {s.busy_seconds:.1f}s = {join_rate:,.0f} events/s "
          f"({join_rate / bare_rate:.2f}x bare; {s.records / cpu_join:,.0f} per CPU second, "
          f"{(s.records / cpu_join) / (n_bare / cpu_bare):.2f}x bare); examples={s.examples} "
          f"dlq={s.dlq} archive_rows={s.archive_rows}", flush=True)  # fmt: skip
    return {"events": rep.events, "replay_rate": rep.rate, "bare_rate": bare_rate,
            "bare_per_cpu_s": n_bare / cpu_bare, "joiner_rate": join_rate,
            "joiner_per_cpu_s": s.records / cpu_join, "ratio": join_rate / bare_rate,
            "ratio_cpu": (s.records / cpu_join) / (n_bare / cpu_bare),
            "joiner_busy_s": s.busy_seconds}  # fmt: skip


def gc_compare(args: argparse.Namespace, kafka: KafkaConfig, work: Path) -> dict[str, Any]:
    """Joiner rate with the default GC vs :func:`streamer.gctune.tune`, alternating runs."""
    import gc

    from lt4rec.data.simulator import simulate
    from streamer.daemon import DaemonOptions, JoinerDaemon

    data = work / "sim-gc"
    simulate(SimConfig(impressions=args.impressions, days=1, seed=0), data)
    events = load_events(data)
    topics = topics_for(f"bench.gc.{uuid.uuid4().hex[:8]}", args.partitions)
    ensure_topics(kafka, topics)
    replay(events, kafka, topics)
    rates: dict[str, list[float]] = {"default": [], "tuned": []}
    per_cpu: dict[str, list[float]] = {"default": [], "tuned": []}
    for i in range(args.gc_compare):
        for mode in ("default", "tuned"):
            run = work / f"gc-{mode}-{i}"
            run.mkdir()
            k = KafkaConfig(**(to_dict(kafka) | {"group_id": f"{topics.impressions}.{mode}{i}"}))
            cfg = app_config(k, topics, run)
            daemon = JoinerDaemon(cfg, DaemonOptions(exit_when_idle_s=3.0, flush_at_end=True))
            daemon.tune_gc = mode == "tuned"
            gc.collect()
            cpu0 = time.process_time()
            s = daemon.run()
            cpu = time.process_time() - cpu0
            rates[mode].append(s.records / max(s.busy_seconds, 1e-9))
            per_cpu[mode].append(s.records / cpu)
            print(f"gc {mode} run {i + 1}: {rates[mode][-1]:,.0f} events/s busy, "
                  f"{s.records / cpu:,.0f} per CPU second", flush=True)  # fmt: skip
    best = {m: max(v) for m, v in rates.items()}
    ratio = best["tuned"] / best["default"]
    cpu_ratio = max(per_cpu["tuned"]) / max(per_cpu["default"])
    print(f"gc: tuned / default (best of {args.gc_compare}): {ratio:.2f}x events/s busy, "
          f"{cpu_ratio:.2f}x events per CPU second", flush=True)  # fmt: skip
    return {"gc_rates": rates, "gc_per_cpu_s": per_cpu, "gc_ratio": ratio,
            "gc_cpu_ratio": cpu_ratio}  # fmt: skip


def pending_rss(args: argparse.Namespace, kafka: KafkaConfig, work: Path) -> dict[str, Any]:
    """Peak RSS of a ``lt4rec streamer`` process holding ``args.pending`` open windows."""
    topics = topics_for(f"bench.pending.{uuid.uuid4().hex[:8]}", args.partitions)
    ensure_topics(kafka, topics)
    producer = make_producer(kafka)
    t0 = 1_793_491_200_000
    start = time.monotonic()
    for i in range(args.pending):
        iid = f"p{i:09d}"
        body = {"event": "impression", "impression_id": iid, "ts": t0 + i * 10,
                "user_id": f"u{i % 50_000}", "item_id": f"v{i % 5_000}",
                "features": {"city": f"c{i % 300}", "age": i % 80, "score": (i % 97) / 97,
                             "tags": ["a", f"t{i % 50}"]}}  # fmt: skip
        producer.send(topics.impressions, value=json.dumps(body).encode(), key=iid.encode())
    producer.flush()
    producer.close()
    print(f"pending: produced {args.pending} impressions in {time.monotonic() - start:.1f}s",
          flush=True)  # fmt: skip
    day = 86_400
    cfg = app_config(kafka, topics, work / "pending",
                     joiner={"click_window_s": 30 * day, "attribution_window_s": 30 * day,
                             "max_pending": max(args.pending * 2, 2_000_000)})  # fmt: skip
    cmd = [sys.executable, "-m", "lt4rec_cli.main", "streamer", "--config",
           str(work / "pending" / "joiner.toml"), "--exit-when-idle", "5"]  # fmt: skip
    start = time.monotonic()
    proc = subprocess.Popen(cmd)
    rss_kib = 0
    while proc.poll() is None:  # the child's own high-water mark (VmHWM), sampled
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            hwm = next(ln for ln in status.splitlines() if ln.startswith("VmHWM"))
            rss_kib = max(rss_kib, int(hwm.split()[1]))
        except (OSError, StopIteration, ValueError):
            pass
        time.sleep(0.2)
    if proc.returncode != 0:
        raise SystemExit(f"joiner failed with exit code {proc.returncode}")
    rss_mb = rss_kib / 1024
    print(
        f"pending: joiner held {args.pending} open windows ({cfg.store.url}); "
        f"{time.monotonic() - start:.1f}s, peak RSS {rss_mb:.0f} MiB",
        flush=True,
    )
    return {"pending": args.pending, "peak_rss_mib": rss_mb}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--impressions", type=int, default=100_000, help="0 = skip throughput")
    ap.add_argument("--data", help="replay this simulator directory instead of simulating")
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--pending", type=int, default=0, help="impressions kept pending (RSS)")
    ap.add_argument("--out", help="write the figures as JSON here")
    ap.add_argument("--no-check-crcs", action="store_true", help="kafka.check_crcs = false")
    ap.add_argument("--workers", type=int, default=1, help="replay producer processes")
    ap.add_argument("--gc-compare", type=int, default=0, help="runs per GC mode (side by side)")
    args = ap.parse_args(argv)
    kafka = KafkaConfig(bootstrap=args.bootstrap, check_crcs=not args.no_check_crcs)
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-joiner-") as tmp:
        work = Path(tmp)
        (work / "pending").mkdir()
        if args.gc_compare > 0:
            result |= gc_compare(args, kafka, work)
        elif args.impressions > 0 or args.data:
            result |= throughput(args, kafka, work)
        if args.pending > 0:
            result |= pending_rss(args, kafka, work)
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
