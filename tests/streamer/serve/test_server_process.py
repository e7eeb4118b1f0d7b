"""Acceptance of ``lt4rec serve``: a real server process on 127.0.0.1 following the real
broker. Swap under load without errors, corrupt versions refused, rollback, a new replica
on a bad current version, hostile requests with bounded memory, ``--workers 2``."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import orjson
import psutil
import pytest

from checkpoints import publish
from lt4rec.testing.serving import random_instances
from streamer.notices import NoticePublisher
from tests.streamer.models_support import ServingEnv, corrupt, save_version, serving_config
from tests.streamer.serve.server_support import Load, ServerProcess
from tests.streamer.serve.test_app import metric

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
SWAP_WITHIN_S = 10.0
BODY = orjson.dumps({"instances": random_instances(8, seed=11)})


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, kafka_bootstrap) -> Iterator[tuple]:
    """A registry with v1 published (notice sent) and one server following the topic."""
    import uuid

    root = tmp_path_factory.mktemp("serving")
    env = serving_config(root, kafka_bootstrap, f"t.serve.models.{uuid.uuid4().hex[:10]}")
    reg = env.registry()
    pub = NoticePublisher(env.cfg.kafka, env.cfg.topics, reg)
    v1 = save_version(reg, env.cfg, seed=1)
    pub.publish(v1.version)
    server = ServerProcess(env.path)
    try:
        server.wait_ready()
        yield env, reg, pub, server, v1
    finally:
        code = server.stop()
        pub.close()
        reg.close()
    assert code == 0, server.log  # a clean SIGTERM shutdown


def predict(server: ServerProcess, body: bytes = BODY) -> httpx.Response:
    assert server.url is not None
    return httpx.post(
        server.url + "/predict", content=body, headers={"content-type": "application/json"},
        timeout=30,
    )  # fmt: skip


def test_swap_under_load_rollback_and_corrupt_versions(deployment):
    env, reg, pub, server, v1 = deployment
    first = predict(server).json()
    assert first["model_version"] == v1.version

    v2 = save_version(reg, env.cfg, seed=2)
    with Load(server.url, BODY, clients=4, max_seconds=40) as load:
        time.sleep(1.0)
        before = load.count()
        t0 = time.monotonic()
        pub.publish(v2.version)
        server.wait_for(lambda m: m["serving"]["version"] == v2.version, SWAP_WITHIN_S)
        swap_s = time.monotonic() - t0
        time.sleep(1.0)
    codes = {code for res in load.results for code, _ in res}
    versions = [v for res in load.results for _, v in res]
    assert codes == {200}, [r for res in load.results for r in res if r[0] != 200][:5]
    assert set(versions) == {v1.version, v2.version}
    for res in load.results:  # per client, in order: v1 answers, then only v2 answers
        seq = [v for _, v in res]
        assert seq == sorted(seq, key=lambda v: v == v2.version)
    assert before > 10 and load.count() > before + 10, "the load did not run during the swap"
    assert swap_s < SWAP_WITHIN_S
    second = predict(server).json()
    assert second["ctr"] != first["ctr"]  # a different model answers

    back = pub.rollback()  # to v1: the previous version
    assert back.version == v1.version
    server.wait_for(lambda m: m["serving"]["publication"] == back.publication, SWAP_WITHIN_S)
    again = predict(server).json()
    assert again == first  # exactly v1's answers

    v3 = save_version(reg, env.cfg, seed=3)
    n3 = publish(reg, v3.version)  # verified here...
    corrupt(v3.path)  # ...then damaged on disk before the servers load it
    pub.send(n3)
    server.wait_for(lambda m: (m["last_error"] or {}).get("version") == v3.version)
    info = server.get("/model").json()
    assert info["serving"]["version"] == v1.version and "sha256" in info["last_error"]["reason"]
    assert predict(server).json() == first
    text = server.get("/metrics").text
    assert metric(text, "lt4rec_serve_model_load_errors_total", reason="corrupt") == 1
    assert metric(text, "lt4rec_serve_model_version") == v1.version
    assert metric(text, "lt4rec_serve_swaps_total", action="rollback") == 1
    assert metric(text, "lt4rec_serve_requests_total", code="200", endpoint="/predict") > 20

    # a new replica while the publication in service is the corrupt v3: it serves the
    # newest older publication that verifies (the rollback to v1)
    replica = ServerProcess(env.path)
    try:
        replica.wait_ready()
        assert replica.get("/model").json()["serving"]["version"] == v1.version
        assert predict(replica).json() == first
    finally:
        assert replica.stop() == 0


def test_hostile_requests_get_4xx_and_memory_stays_bounded(deployment):
    _, _, _, server, _ = deployment
    proc = psutil.Process(server.proc.pid)
    max_body = 1_048_576
    hostile = {
        "oversize": (b'{"instances": [' + b'{"user_id": "u"},' * 200_000 + b"{}]}", 413),
        "100k instances": (orjson.dumps({"instances": [{}] * 100_000}), 413),
        "wrong types": (orjson.dumps({"instances": [{"quality": "high", "hour": [1]}]}), 422),
        "NaN": (b'{"instances": [{"quality": NaN}]}', 400),
        "Infinity": (b'{"instances": [{"price": 1e999}]}', 400),
        "deep JSON": (b'{"instances": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", 400),
        "not JSON": (b"\x00\xff" * 1000, 400),
        "long string": (orjson.dumps({"instances": [{"user_id": "x" * 5000}]}), 422),
    }
    assert len(hostile["oversize"][0]) > max_body

    def chunked():
        for _ in range(200):
            yield b"[" * 10_000

    rss = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for rnd in range(6):
            for name, (body, status) in hostile.items():
                r = client.post("/predict", content=body)
                assert r.status_code == status, (name, r.text)
                assert r.json()["error"], name
            r = client.post("/predict", content=chunked())  # no Content-Length, 2 MB
            assert r.status_code == 413 and "over" in r.json()["error"]
            rss.append(proc.memory_info().rss)
            if rnd == 0:
                assert predict(server).status_code == 200
    assert predict(server).status_code == 200  # still up and serving
    assert proc.is_running()
    growth_mb = (max(rss[1:]) - rss[0]) / 2**20
    assert growth_mb < 32, f"RSS grew by {growth_mb:.1f} MiB over the hostile rounds: {rss}"
    text = server.get("/metrics").text
    assert metric(text, "lt4rec_serve_refused_total", reason="body_too_large") >= 12
    assert metric(text, "lt4rec_serve_requests_total", code="500", endpoint="/predict") == 0


def test_workers_2_share_the_port_swap_and_aggregate_metrics(tmp_path, kafka_bootstrap,
                                                            unique_name):  # fmt: skip
    env: ServingEnv = serving_config(tmp_path / "w", kafka_bootstrap, unique_name("models"))
    reg = env.registry()
    with NoticePublisher(env.cfg.kafka, env.cfg.topics, reg) as pub:
        v1 = save_version(reg, env.cfg, seed=1)
        pub.publish(v1.version)
        server = ServerProcess(env.path, "--workers", "2")
        try:
            server.wait_ready()

            def by_pid() -> dict[int, int]:
                seen: dict[int, int] = {}
                for _ in range(60):  # new connections: both workers accept some
                    h = httpx.get(server.url + "/healthz", timeout=5).json()
                    if h["status"] == "ok":  # a worker still starting answers 503 "starting"
                        seen[h["pid"]] = h["model_version"]
                return seen

            deadline = time.monotonic() + 60
            while len(seen := by_pid()) < 2 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert len(seen) == 2 and set(seen.values()) == {v1.version}
            v2 = save_version(reg, env.cfg, seed=2)
            pub.publish(v2.version)
            deadline = time.monotonic() + 30
            while set((seen := by_pid()).values()) != {v2.version}:
                assert time.monotonic() < deadline, seen
                time.sleep(0.3)
            assert len(seen) == 2
            for _ in range(10):
                assert predict(server).status_code == 200
            text = server.get("/metrics").text
            ok = metric(text, "lt4rec_serve_requests_total", code="200", endpoint="/predict")
            assert ok == 10  # summed over both workers
            gauges = re.findall(r'^lt4rec_serve_model_version\{pid="(\d+)"\} (\S+)$', text, re.M)
            assert {int(p) for p, _ in gauges} >= set(seen) and {
                float(v) for p, v in gauges if int(p) in seen
            } == {float(v2.version)}
        finally:
            assert server.stop() == 0, server.log
    reg.close()
