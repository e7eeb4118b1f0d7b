"""Online worker throughput against a plain in-memory PyTorch loop (same model, same batches).

Usage (repository root, shared venv, the broker of ``ops/kafka/kafka.sh``)::

    nice -n 10 .venv/bin/python ops/bench/worker.py --impressions 60000 --repeats 3

1. simulate ``--impressions`` impressions (1 day) and write them as the ``final`` examples a
   ``wait_full`` joiner emits (:mod:`streamer.worker.synthetic`) into a fresh, uniquely named
   examples topic (``--partitions``);
2. an untrained model of the product's default architecture (``[model]`` / ``[data]``
   defaults: 100,003 hash buckets, embeddings 16, bottom 256-128, tower 64) with random masks at
   the fit's densities (CTR 29 %, CVR 16 %) is the start checkpoint;
3. **plain**: every example encoded up front into batches of ``--batch-size`` in topic order,
   then ``train_step`` per batch on a fresh copy of the model and optimiser (nothing else);
4. **worker**: :class:`~streamer.worker.WorkerDaemon` in this process (Kafka -> parse/validate
   -> dedup -> encode -> score -> masked step -> progressive metrics -> checkpoints, commit
   order and all; fresh group and registry per run), rate = examples / busy seconds
   (first polled record -> last trained batch);
5. with ``--gc`` also the worker without ``gc.freeze()`` / higher thresholds.

Variants alternate ``--repeats`` times in one process; the ratios of medians are printed
(target: worker >= 0.8x plain). Torch uses ``--threads`` intra-op threads in both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import tomli_w
import torch

from checkpoints import load_checkpoint
from lt4rec.config import AppConfig, DataConfig, ModelConfig, SimConfig, load_app_config, to_dict
from lt4rec.train.loop import make_optimizer, train_step
from streamer.kafka.admin import ensure_topics
from streamer.kafka.producer import ProducerSink
from streamer.worker import WorkerDaemon, WorkerOptions
from streamer.worker.encode import ExampleEncoder
from streamer.worker.examples import parse_example
from streamer.worker.synthetic import ExampleRow, base_checkpoint, example_rows


def setup(args: argparse.Namespace, work: Path) -> tuple[list[ExampleRow], Path, str]:
    from lt4rec.data.simulator import simulate

    sim = work / "sim"
    simulate(SimConfig(impressions=args.impressions, days=1, seed=0), sim)
    rows = example_rows(sim)
    ckpt = base_checkpoint(
        sim, work / "base.ckpt", ModelConfig(), DataConfig(), density=(0.29, 0.16)
    )
    topic = f"bench.worker.{uuid.uuid4().hex[:8]}"
    return rows, ckpt, topic


def fill_topic(args: argparse.Namespace, cfg: AppConfig, rows: list[ExampleRow]) -> None:
    ensure_topics(cfg.kafka, cfg.topics)
    sink = ProducerSink(cfg.kafka, "bench")
    try:
        sink.send_rows(cfg.topics.examples, [(r.key, r.value, r.headers()) for r in rows])
    finally:
        sink.close()


def app_config(
    args: argparse.Namespace, topic: str, ckpt: Path, run: Path, **worker: Any
) -> AppConfig:
    data = to_dict(AppConfig())
    data["kafka"].update(bootstrap=args.bootstrap)
    data["topics"].update(
        impressions=f"{topic}.imp", clicks=f"{topic}.clk", conversions=f"{topic}.cnv",
        examples=f"{topic}.ex", dlq=f"{topic}.dlq", partitions=args.partitions,
    )  # fmt: skip
    data["registry"].update(
        url=f"sqlite:///{run / 'registry.db'}", dir=str(run / "models"), keep_last=2
    )
    data["metrics"]["progress_interval_s"] = 0.0
    data["worker"].update(
        group_id=f"{topic}.{run.name}", init_checkpoint=str(ckpt), batch_size=args.batch_size,
        threads=args.threads,
    )  # fmt: skip
    data["worker"].update(worker)
    run.mkdir(parents=True, exist_ok=True)
    path = run / "worker.toml"
    path.write_text(tomli_w.dumps(data))
    return load_app_config(path)


def plain_loop(args: argparse.Namespace, rows: list[ExampleRow], ckpt_path: Path) -> float:
    """examples/s of ``train_step`` over pre-encoded batches (the same rows, topic order)."""
    ckpt = load_checkpoint(ckpt_path)
    model = ckpt.build_model()
    opt = make_optimizer(model, 1e-3)  # type: ignore[arg-type]
    from lt4rec.data import FeatureSpec, Normalizer

    enc = ExampleEncoder(
        FeatureSpec.from_dict(ckpt.spec or {}), Normalizer.from_dict(ckpt.normalizer or {}),
        ckpt.field_schema(),
    )  # fmt: skip
    parsed = [parse_example(0, i, r.key, r.value, r.headers(), "wait_full", enc.columns)
              for i, r in enumerate(rows)]  # fmt: skip
    bs = args.batch_size
    batches = [enc.encode(parsed[i : i + bs])[0] for i in range(0, len(parsed), bs)]
    t0 = time.perf_counter()
    for b in batches:
        train_step(model, b, opt)  # type: ignore[arg-type]
    return len(parsed) / (time.perf_counter() - t0)


def worker_run(cfg: AppConfig) -> tuple[float, dict[str, Any]]:
    s = WorkerDaemon(cfg, WorkerOptions(exit_when_idle_s=3.0)).run()
    n = s.counters["examples"]
    return n / max(s.busy_seconds, 1e-9), {"examples": n, "busy_s": s.busy_seconds,
                                           "checkpoints": s.checkpoints}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--impressions", type=int, default=60_000)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (both)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gc", action="store_true", help="also the worker without gc.freeze")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"args": vars(args), "plain": [], "worker": [], "worker_nogc": []}
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        work = Path(tmp)
        rows, ckpt, topic = setup(args, work)
        fill_topic(args, app_config(args, topic, ckpt, work / "fill"), rows)
        print(f"{len(rows)} examples in {topic}.ex ({args.partitions} partitions)", flush=True)
        for r in range(args.repeats):
            plain = plain_loop(args, rows, ckpt)
            result["plain"].append(plain)
            rate, info = worker_run(app_config(args, topic, ckpt, work / f"w{r}"))
            result["worker"].append(rate)
            line = f"repeat {r + 1}: plain {plain:,.0f} ex/s, worker {rate:,.0f} ex/s {info}"
            if args.gc:
                cfg = app_config(args, topic, ckpt, work / f"n{r}", gc_freeze=False)
                nogc, _ = worker_run(cfg)
                result["worker_nogc"].append(nogc)
                line += f", worker without gc.freeze {nogc:,.0f} ex/s"
            print(line, flush=True)
    med = {k: statistics.median(v) for k, v in result.items() if isinstance(v, list) and v}
    result["median"] = med
    result["ratio"] = med["worker"] / med["plain"]
    print(f"median: plain {med['plain']:,.0f} ex/s, worker {med['worker']:,.0f} ex/s: "
          f"{result['ratio']:.2f}x plain (target >= 0.8x)")  # fmt: skip
    if args.gc:
        result["gc_ratio"] = med["worker"] / med["worker_nogc"]
        print(f"gc.freeze + thresholds: {result['gc_ratio']:.3f}x the worker without")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
