#!/usr/bin/env python
"""Prediction server benchmark: ``/predict`` latency and throughput, side by side in one run.

    nice -n 10 .venv/bin/python ops/bench/serve.py --json-out runs/bench/serve.json

Three servers run at once on 127.0.0.1, each on the same published version (a
``sparse_sharing`` model of the simulator's feature spec with random masks of ``--density``):

* ``sparse``: ``lt4rec serve`` (Starlette, validation, metrics) on the sparse per-task export;
* ``dense``: ``lt4rec serve --set serve.engine=dense``, the trained model (``W ⊙ M`` per call);
* ``bare``: a minimal TorchServe-style baseline, a raw ASGI endpoint on the same uvicorn
  (httptools + uvloop) and the same sparse model and encoder, without Starlette, validation
  or metrics (``serve.py bare``): the difference to ``sparse`` is our stack's overhead.

A closed-loop asyncio client (``--clients`` keep-alive connections) posts batches of
``--batch-sizes`` instances; variants are interleaved in ``--rounds`` rounds of ``--seconds``
each so that load drifts of the shared machine hit all of them. Then the swap pause: the
``sparse`` server under batch-1 load, alternately without swaps and while a new version (one
of ``--versions`` cycled so that no held copy can be reused) is announced every
``--swap-every`` seconds; p99 / max latency of both phases. Needs the Kafka broker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"listening on http://([\d.]+):(\d+)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("mode", nargs="?", default="bench", choices=["bench", "bare"])
    p.add_argument("--config", type=Path, help="(bare mode) the config of the served registry")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 256])
    p.add_argument("--clients", type=int, default=4, help="concurrent keep-alive connections")
    p.add_argument("--seconds", type=float, default=4.0, help="per variant and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--hash-buckets", type=int, default=100_003)
    p.add_argument("--embedding-dim", type=int, default=16)
    p.add_argument("--bottom", type=int, nargs="+", default=[256, 128])
    p.add_argument("--tower", type=int, nargs="+", default=[64])
    p.add_argument("--density", type=float, default=0.3)
    p.add_argument("--versions", type=int, default=4, help="versions cycled in the swap phase")
    p.add_argument("--swap-every", type=float, default=1.0)
    p.add_argument("--swap-seconds", type=float, default=6.0, help="per phase and round")
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--no-swap", action="store_true", help="skip the swap phase")
    p.add_argument("--gil-repeats", type=int, default=3, help="loads per variant in the GIL probe")
    p.add_argument("--json-out", type=Path, default=None)
    return p.parse_args(argv)


# ---- the bare baseline ------------------------------------------------------------------
def bare_server(config: Path) -> None:
    """A raw ASGI /predict on the same model and encoder: no validation, no framework."""
    import math

    import torch
    import uvicorn

    from checkpoints import Notice, Registry
    from lt4rec.config import load_app_config
    from streamer.serve.instances import Columns
    from streamer.serve.model import load_served
    from streamer.serve.server import bind

    cfg = load_app_config(config)
    torch.set_num_threads(1)
    reg = Registry(cfg.registry)
    current = reg.current()
    assert current is not None, "publish a version first"
    model = load_served(Notice.of(current), cfg.serve)
    spec = model.encoder.spec

    def columns(instances: list[dict[str, Any]]) -> Columns:
        def s(v: Any) -> str | None:
            return None if v is None else str(v)

        return Columns(
            len(instances),
            [[s(i.get(f)) for i in instances] for f in spec.sparse],
            [[[str(x) for x in i[f]] if i.get(f) else None for i in instances] for f in spec.multi],
            __import__("numpy").array(
                [[math.nan if i.get(f) is None else float(i[f]) for f in spec.dense]
                 for i in instances], dtype="float64",
            ).reshape(len(instances), len(spec.dense)),
        )  # fmt: skip

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        out = orjson.dumps(model.predict_columns(columns(orjson.loads(body)["instances"])))
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(out))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": out})

    sock = bind("127.0.0.1", 0)
    print(f"bare: listening on http://127.0.0.1:{sock.getsockname()[1]}", file=sys.stderr,
          flush=True)  # fmt: skip
    config_ = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="off",
                             log_level="warning", access_log=False)  # fmt: skip
    uvicorn.Server(config_).run(sockets=[sock])


# ---- set-up -------------------------------------------------------------------------------
def prepare(args: argparse.Namespace, work: Path) -> tuple[Path, list[int]]:
    """A registry with ``--versions`` saved versions (the first published) and its config."""
    from dataclasses import replace

    import tomli_w

    from checkpoints import Registry, publish, save_checkpoint
    from lt4rec.config import AppConfig, DataConfig, ModelConfig, load_app_config, to_dict
    from lt4rec.data.simulator.columns import sim_spec
    from lt4rec.testing.serving import random_served_model

    spec = sim_spec()
    cfg = replace(
        AppConfig(),
        data=DataConfig(hash_buckets=args.hash_buckets, multi_max_len=8),
        model=ModelConfig(embedding_dim=args.embedding_dim, bottom=tuple(args.bottom),
                          tower=tuple(args.tower)),
    )  # fmt: skip
    data = to_dict(cfg)
    data["kafka"]["bootstrap"] = args.bootstrap
    data["topics"]["models"] = f"bench.serve.{uuid.uuid4().hex[:10]}"
    data["registry"].update(url=f"sqlite:///{work / 'registry.db'}", dir=str(work / "models"))
    data["serve"].update(port=0, threads=1, limit_concurrency=1024, registry_poll_s=0.0)
    path = work / "serve.toml"
    path.write_text(tomli_w.dumps(data))
    cfg = load_app_config(path)
    reg = Registry(cfg.registry)
    versions = []
    for seed in range(args.versions):
        model, norm = random_served_model(cfg, spec, seed, args.density)
        info = reg.save("offline", lambda p, m=model, n=norm: save_checkpoint(
            p, m, config=cfg, spec=spec.to_dict(), normalizer=n.to_dict()),
            model_name=cfg.model.name)  # fmt: skip
        versions.append(info.version)
    publish(reg, versions[0], "bench")
    reg.close()
    return path, versions


class Proc:
    """A server subprocess; ``port`` is parsed from its 'listening on' line."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(argv, cwd=REPO, stderr=subprocess.PIPE, text=True,
                                     stdout=subprocess.DEVNULL)  # fmt: skip
        self.port: int | None = None
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            m = LISTENING.search(line)
            if m and self.port is None:
                self.port = int(m.group(2))

    def wait(self, timeout: float = 180) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited:\n{''.join(self.lines[-30:])}")
            if self.port is not None:
                try:
                    r = httpx.post(f"http://127.0.0.1:{self.port}/predict", timeout=5,
                                   content=b'{"instances": [{}]}')  # fmt: skip
                    if r.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        raise SystemExit(f"{self.name} not ready:\n{''.join(self.lines[-30:])}")

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process used so far (load-independent cost)."""
        import psutil

        t = psutil.Process(self.proc.pid).cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ---- the load -----------------------------------------------------------------------------
async def _client(port: int, request: bytes, stop_at: float, out: list[tuple[float, int, Any]],
                  versions: bool) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            m = re.search(rb"content-length: *(\d+)", head, re.I)
            body = await reader.readexactly(int(m.group(1)) if m else 0)
            dt = time.perf_counter() - t0
            status = int(head[9:12])
            version = orjson.loads(body).get("model_version") if versions and body else None
            out.append((dt, status, version))
    finally:
        writer.close()


def run_load(port: int, body: bytes, clients: int, seconds: float,
             versions: bool = False) -> list[tuple[float, int, Any]]:  # fmt: skip
    request = (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body)) + body  # fmt: skip
    out: list[tuple[float, int, Any]] = []

    async def main() -> None:
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(*(_client(port, request, stop_at, out, versions)
                               for _ in range(clients)))  # fmt: skip

    import uvloop

    uvloop.run(main())
    return out


def summarise(samples: list[tuple[float, int, Any]], seconds: float, batch: int) -> dict:
    lat = sorted(s[0] for s in samples)
    errors = sum(1 for s in samples if s[1] != 200)

    def q(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3 if lat else float("nan")

    rps = len(samples) / seconds
    return {"requests": len(samples), "errors": errors, "p50_ms": q(0.5), "p99_ms": q(0.99),
            "max_ms": lat[-1] * 1e3 if lat else float("nan"), "rps": rps,
            "instances_per_s": rps * batch}  # fmt: skip


# ---- the benchmark ------------------------------------------------------------------------
def bench(args: argparse.Namespace) -> dict[str, Any]:
    from lt4rec.data.simulator.columns import sim_spec
    from lt4rec.testing.serving import random_instances

    work = Path(tempfile.mkdtemp(prefix="lt4rec-bench-serve-"))
    print(f"[setup] {args.versions} versions under {work}", flush=True)
    config, versions = prepare(args, work)
    py = sys.executable
    serve = [py, "-m", "lt4rec_cli.main", "serve", "--config", str(config)]
    procs = {
        "sparse": Proc("sparse", serve),
        "dense": Proc("dense", [*serve, "--set", "serve.engine=dense"]),
        "bare": Proc("bare", [py, str(Path(__file__).resolve()), "bare", "--config", str(config)]),
    }
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()},
                               "cpu_count": os.cpu_count(), "latency": {}, "swap": {}}  # fmt: skip
    try:
        for p in procs.values():
            p.wait()
        print("[setup] servers ready", flush=True)
        for batch in args.batch_sizes:
            body = orjson.dumps({"instances": random_instances(batch, seed=batch,
                                                               spec=sim_spec())})  # fmt: skip
            samples: dict[str, list] = {name: [] for name in procs}
            cpu = dict.fromkeys(procs, 0.0)
            for rnd in range(args.rounds):
                for name, p in procs.items():
                    assert p.port is not None
                    run_load(p.port, body, args.clients, 0.5)  # warm-up
                    t0 = p.cpu_seconds()
                    samples[name] += run_load(p.port, body, args.clients, args.seconds)
                    cpu[name] += p.cpu_seconds() - t0
                print(f"[latency] batch {batch} round {rnd + 1}/{args.rounds}", flush=True)
            results["latency"][str(batch)] = {
                name: {**summarise(s, args.seconds * args.rounds, batch),
                       "server_cpu_ms_per_request": 1e3 * cpu[name] / max(1, len(s))}
                for name, s in samples.items()
            }  # fmt: skip
        for name in ("dense", "bare"):  # the swap phase measures one replica alone
            procs[name].stop()
        results["gil"] = gil_probe(config, args.gil_repeats)
        if not args.no_swap:
            results["swap"] = swap_phase(args, config, versions, procs["sparse"])
    finally:
        for p in procs.values():
            p.stop()
    return results


def swap_phase(args: argparse.Namespace, config: Path, versions: list[int], p: Proc) -> dict:
    """Batch-1 load on ``sparse``: steady phases vs phases with a swap every ``swap_every``."""
    import httpx

    from checkpoints import Notice, Registry
    from lt4rec.config import load_app_config
    from lt4rec.data.simulator.columns import sim_spec
    from lt4rec.testing.serving import random_instances
    from streamer.notices import NoticePublisher

    cfg = load_app_config(config)
    reg = Registry(cfg.registry)
    pub = NoticePublisher(cfg.kafka, cfg.topics, reg)
    body = orjson.dumps({"instances": random_instances(1, seed=7, spec=sim_spec())})
    steady: list = []
    swapping: list = []
    announced = 0
    nxt = 1
    assert p.port is not None
    try:
        for rnd in range(args.rounds):
            steady += run_load(p.port, body, args.clients, args.swap_seconds, versions=True)
            stop = threading.Event()

            def announce(stop: threading.Event = stop) -> None:
                nonlocal announced, nxt
                while not stop.wait(args.swap_every):
                    v = versions[nxt % len(versions)]
                    nxt += 1
                    # a new publication of v without re-verifying it here (the server does)
                    pub.send(Notice.of(reg.add_publication(v, "publish", "bench swap")))
                    announced += 1

            t = threading.Thread(target=announce, daemon=True)
            t.start()
            swapping += run_load(p.port, body, args.clients, args.swap_seconds, versions=True)
            stop.set()
            t.join(30)
            print(f"[swap] round {rnd + 1}/{args.rounds}: {announced} swaps announced", flush=True)
        info = httpx.get(f"http://127.0.0.1:{p.port}/model", timeout=10).json()
        metrics = httpx.get(f"http://127.0.0.1:{p.port}/metrics", timeout=10).text
    finally:
        pub.close()
        reg.close()
    seconds = args.swap_seconds * args.rounds
    load = re.search(r"^lt4rec_serve_model_load_seconds_sum (\S+)$", metrics, re.M)
    count = re.search(r"^lt4rec_serve_model_load_seconds_count (\S+)$", metrics, re.M)
    return {
        "steady": summarise(steady, seconds, 1),
        "swapping": summarise(swapping, seconds, 1),
        "announced": announced,
        "swaps_done": info["swaps"] - 1,
        "versions_answering": sorted({s[2] for s in swapping if s[2] is not None}),
        "mean_load_s": float(load.group(1)) / max(1.0, float(count.group(1))) if load and count
        else None,
        "last_load_s": info["serving"]["load_seconds"],
    }  # fmt: skip


def gil_probe(config: Path, repeats: int = 3) -> dict[str, Any]:
    """Longest GIL hold of a checkpoint load, seen by a thread ticking every 1 ms.

    Side by side: ``load_checkpoint`` (blocked reads, block hashing, torch copies) vs the
    plain way (``read_bytes``, whole-body hash, ``safetensors.torch.load`` of a copy).
    """
    import hashlib
    import struct

    from safetensors.torch import load as st_load

    from checkpoints import Registry, load_checkpoint
    from lt4rec.config import load_app_config

    cfg = load_app_config(config)
    reg = Registry(cfg.registry)
    current = reg.current()
    reg.close()
    assert current is not None and current.version.path is not None
    path = Path(current.version.path)

    header = struct.Struct("<8sIQQ32s")  # checkpoints.format's file header

    def plain() -> None:  # what load_checkpoint did before checkpoints/blob.py
        data = path.read_bytes()
        meta_len = header.unpack_from(data)[2]
        body = data[header.size :]
        hashlib.sha256(body).digest()
        st_load(bytes(body[meta_len:]))

    gaps: list[float] = []
    stop = threading.Event()

    def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    t = threading.Thread(target=tick, daemon=True)
    t.start()
    out: dict[str, Any] = {"file_mb": path.stat().st_size / 1e6}
    for name, fn in (("blocked_views", lambda: load_checkpoint(path)), ("plain_copies", plain)):
        worst, secs = [], []
        for _ in range(repeats):
            time.sleep(0.05)
            gaps.clear()
            t0 = time.perf_counter()
            fn()
            secs.append(time.perf_counter() - t0)
            worst.append(max(gaps) * 1e3 if gaps else float("nan"))
        out[name] = {"max_gil_hold_ms": sorted(worst)[len(worst) // 2], "seconds": min(secs)}
    stop.set()
    t.join()
    return out


def markdown(res: dict[str, Any]) -> str:
    lines = ["| batch | server | p50 ms | p99 ms | requests/s | instances/s "
             "| server CPU ms/request | errors |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for batch, by in res["latency"].items():
        for name, r in by.items():
            lines.append(f"| {batch} | {name} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                         f"{r['rps']:,.0f} | {r['instances_per_s']:,.0f} | "
                         f"{r['server_cpu_ms_per_request']:.2f} | {r['errors']} |")  # fmt: skip
    lines.append("")
    for batch, by in res["latency"].items():
        s, d, b = by["sparse"], by["dense"], by["bare"]
        lines.append(
            f"- batch {batch}: sparse vs dense p50 {d['p50_ms'] / s['p50_ms']:.2f}x faster, "
            f"throughput {s['rps'] / d['rps']:.2f}x; overhead vs bare: p50 "
            f"+{s['p50_ms'] - b['p50_ms']:.2f} ms ({s['p50_ms'] / b['p50_ms']:.2f}x), "
            f"throughput {s['rps'] / b['rps']:.2f}x of bare; server CPU per request "
            f"{s['server_cpu_ms_per_request']:.2f} ms vs {b['server_cpu_ms_per_request']:.2f} ms "
            f"bare, {d['server_cpu_ms_per_request']:.2f} ms dense"
        )
    g = res.get("gil")
    if g:
        a, b = g["blocked_views"], g["plain_copies"]
        lines.append(
            f"- loading one {g['file_mb']:.0f} MB checkpoint: longest GIL hold "
            f"{a['max_gil_hold_ms']:.1f} ms (load_checkpoint) vs {b['max_gil_hold_ms']:.1f} ms "
            f"(read_bytes + safetensors.load), {a['seconds']:.2f} s vs {b['seconds']:.2f} s"
        )
    sw = res["swap"]
    if sw:
        st, sp = sw["steady"], sw["swapping"]
        lines.append(
            f"- swaps (batch 1): p99 {st['p99_ms']:.2f} ms steady vs {sp['p99_ms']:.2f} ms "
            f"while swapping ({sp['p99_ms'] / st['p99_ms']:.2f}x), max {st['max_ms']:.1f} vs "
            f"{sp['max_ms']:.1f} ms; {sw['swaps_done']} swaps of {sw['announced']} announced, "
            f"errors {sp['errors']}, versions answering {sw['versions_answering']}, "
            f"mean load {sw['mean_load_s']:.2f} s"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.mode == "bare":
        bare_server(args.config)
        return 0
    res = bench(args)
    print(markdown(res))
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(res, indent=2))
    errors = sum(r["errors"] for by in res["latency"].values() for r in by.values())
    if res["swap"]:
        errors += res["swap"]["swapping"]["errors"] + res["swap"]["steady"]["errors"]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
