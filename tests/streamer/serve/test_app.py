"""The endpoints in-process (Starlette TestClient): answers, refusals with reasons, metrics,
and the swap of the model reference."""

from __future__ import annotations

import json
import re

import orjson
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from checkpoints import verify_file
from lt4rec.testing.serving import random_instances
from streamer.serve.app import create_app
from streamer.serve.metrics import ServeMetrics
from streamer.serve.model import load_served
from streamer.serve.swap import ModelSlot
from tests.streamer.models_support import corrupt


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus text exposition (0 when absent)."""
    sel = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{re.escape(name)}(\{{{re.escape(sel)}\}})? (\S+)$" if sel else rf"^{name} (\S+)$"
    for line in text.splitlines():
        m = re.match(pattern, line)
        if m:
            return float(m.groups()[-1])
    return 0.0


def test_predict_returns_the_three_probabilities_and_the_version(client):
    c, _, notices = client
    instances = random_instances(5, seed=2)
    r = c.post("/predict", json={"instances": instances})
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == {"ctr", "cvr", "ctcvr", "model_version"}
    assert out["model_version"] == notices[0].version
    for k in ("ctr", "cvr", "ctcvr"):
        assert len(out[k]) == 5 and all(0 < p < 1 for p in out[k])
    for ctr, cvr, ctcvr in zip(out["ctr"], out["cvr"], out["ctcvr"], strict=True):
        assert ctcvr == pytest.approx(ctr * cvr, rel=1e-6)


def test_sparse_export_answers_like_the_dense_masked_model(client):
    c, slot, notices = client
    instances = random_instances(64, seed=4)
    out = c.post("/predict", json={"instances": instances}).json()
    model = verify_file(notices[0].path, notices[0].sha256).build_model().eval()
    served = load_served(notices[0], slot.cfg)
    with torch.no_grad():
        logits = model(served.encoder.encode(served.encoder.validate(instances)))
    for task in ("ctr", "cvr"):
        want = torch.sigmoid(logits[task])
        assert torch.allclose(torch.tensor(out[task]), want, atol=1e-6)
    assert len(set(out["ctr"])) > 10  # the instances really score differently


def test_healthz_model_and_metrics(client):
    c, _, notices = client
    assert c.get("/healthz").json()["model_version"] == notices[0].version
    info = c.get("/model").json()
    assert info["serving"]["version"] == notices[0].version
    assert info["serving"]["engine"] == "sparse"
    assert info["serving"]["features"]["sparse"] == ["user_id", "item_id", "hour"]
    assert set(info["serving"]["tasks"]) == {"ctr", "cvr"}
    c.post("/predict", json={"instances": random_instances(3)})
    c.post("/predict", content=b"nope")
    text = c.get("/metrics").text
    assert metric(text, "lt4rec_serve_requests_total", code="200", endpoint="/predict") == 1
    assert metric(text, "lt4rec_serve_requests_total", code="400", endpoint="/predict") == 1
    assert metric(text, "lt4rec_serve_refused_total", reason="bad_json") == 1
    assert metric(text, "lt4rec_serve_instances_total") == 3
    assert metric(text, "lt4rec_serve_model_version") == notices[0].version
    assert metric(text, "lt4rec_serve_predict_seconds_count") == 1


def test_no_model_yet_is_503_not_500(local_env):
    env = local_env()
    with TestClient(create_app(env.cfg, ModelSlot(env.cfg.serve, ServeMetrics()), False)) as c:
        assert c.get("/healthz").status_code == 503
        r = c.post("/predict", json={"instances": [{}]})
        assert r.status_code == 503 and "no model" in r.json()["error"]


def test_hostile_requests_get_4xx_with_a_reason(client):
    c, _, _ = client
    cases = {
        "oversize": (b'{"instances": [' + b"{}," * 400_000 + b"{}]}", 413),
        "count": (orjson.dumps({"instances": [{}] * 100_000}), 413),
        "nan": (b'{"instances": [{"quality": NaN}]}', 400),
        "deep": (b'{"instances": [' * 3000 + b"]" * 3000 + b"}", 400),
        "type": (orjson.dumps({"instances": [{"hour": [1]}]}), 422),
        "shape": (b'{"instances": 3}', 400),
        "utf8": (b'{"instances": [{"user_id": "\xff"}]}', 400),
    }
    for name, (body, status) in cases.items():
        r = c.post("/predict", content=body, headers={"content-type": "application/json"})
        assert r.status_code == status, (name, r.text)
        assert r.json()["error"], name
    assert c.post("/predict", json={"instances": [{}]}).status_code == 200
    assert c.get("/predict").status_code == 405
    assert c.get("/nothing").status_code == 404


def test_chunked_body_over_the_limit_is_413(local_env, published):
    env, notices = published(serve={"max_body_bytes": 1000})
    slot = ModelSlot(env.cfg.serve, ServeMetrics())
    assert slot.apply(notices[0])
    with TestClient(create_app(env.cfg, slot, follow=False)) as c:

        def chunks():
            yield b'{"instances": ['
            for _ in range(200):
                yield b'{"user_id": "u1"},'
            yield b"{}]}"

        r = c.post("/predict", content=chunks())
        assert r.status_code == 413 and "over 1000 bytes" in r.json()["error"]


values = (
    st.none() | st.integers() | st.text(max_size=4)
    | st.floats(allow_nan=False, allow_infinity=False) | st.lists(st.integers(), max_size=3)
)  # fmt: skip
instance = st.dictionaries(st.sampled_from(["user_id", "tags", "quality", "zz"]), values)
bodies = st.binary(max_size=200) | st.builds(
    lambda v: json.dumps({"instances": v}).encode(), st.lists(instance, max_size=4)
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies)
def test_no_body_makes_the_server_answer_5xx(client, body):
    c, _, _ = client
    r = c.post("/predict", content=body)
    assert r.status_code == 200 or 400 <= r.status_code < 500, r.text


def test_swap_changes_the_answering_version_and_rollback_reuses_the_old_copy(client):
    c, slot, notices = client
    first = slot.current
    assert slot.apply(notices[1])
    assert c.post("/predict", json={"instances": [{}]}).json()["model_version"] == 2
    assert slot.previous is first
    from checkpoints import Notice

    back = Notice(**{**notices[0].__dict__, "publication": 99, "action": "rollback"})
    corrupt(back.path)  # the held copy is reused: the file is not read again
    assert slot.apply(back)
    assert slot.current.model is first.model and slot.current.info.publication == 99
    assert c.post("/predict", json={"instances": [{}]}).json()["model_version"] == 1


def test_a_corrupt_version_is_refused_and_counted(client):
    c, slot, notices = client
    corrupt(notices[1].path)
    assert not slot.apply(notices[1])
    assert slot.current.version == notices[0].version
    assert "sha256" in slot.last_error["reason"]
    text = c.get("/metrics").text
    assert metric(text, "lt4rec_serve_model_load_errors_total", reason="corrupt") == 1
    assert c.get("/model").json()["last_error"]["version"] == notices[1].version


def test_an_unservable_version_is_refused_and_counted(client, tmp_path):
    from checkpoints import Notice, save_checkpoint
    from checkpoints.registry import sha256_file
    from lt4rec.testing.serving import random_served_model, small_config

    c, slot, notices = client
    model, _ = random_served_model(small_config(), seed=5)
    path = save_checkpoint(tmp_path / "nospec.ckpt", model, config=small_config())  # no spec
    bad = Notice(**{**notices[0].__dict__, "publication": 50, "version": 50, "path": str(path),
                    "sha256": sha256_file(path)[0]})  # fmt: skip
    assert not slot.apply(bad)
    assert slot.current.version == notices[0].version
    assert "no feature spec" in slot.last_error["reason"]
    text = c.get("/metrics").text
    assert metric(text, "lt4rec_serve_model_load_errors_total", reason="unservable") == 1
