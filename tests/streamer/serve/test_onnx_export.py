"""ONNX export of published versions: onnxruntime agrees with torch and with the server's
answers; the version directory appears complete or not at all; exports are immutable."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from checkpoints import CorruptCheckpointError, save_checkpoint
from lt4rec.models import build_model
from lt4rec.testing.serving import SERVE_SPEC, random_instances, random_served_model
from lt4rec_cli.main import app
from streamer.serve.model import load_served
from streamer.serve.onnx_export import OnnxExportError, export_version
from tests.streamer.models_support import corrupt


def test_exported_model_answers_like_the_server(published, tmp_path):
    env, (n1,) = published()
    repo = tmp_path / "repo"
    path = export_version(n1.path, n1.sha256, n1.model_name, n1.version, repo)
    assert path == repo / "sparse_sharing" / str(n1.version) / "model.onnx"
    assert (
        (repo / "sparse_sharing" / "config.pbtxt")
        .read_text()
        .startswith('name: "sparse_sharing"\nplatform: "onnxruntime_onnx"')
    )
    served = load_served(n1, env.cfg.serve)
    instances = random_instances(100, seed=5)
    want = served.predict(instances)
    batch = served.encoder.encode(served.encoder.validate(instances))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"sparse": batch.sparse.numpy(), "multi": batch.multi.numpy(),
             "dense": batch.dense.numpy()}  # fmt: skip
    got = session.run(["ctr", "cvr", "ctcvr"], feeds)
    for k, arr in zip(("ctr", "cvr", "ctcvr"), got, strict=True):
        assert np.abs(arr - np.array(want[k])).max() < 1e-5, k
    mtime = path.stat().st_mtime_ns
    assert export_version(n1.path, n1.sha256, n1.model_name, n1.version, repo) == path
    assert path.stat().st_mtime_ns == mtime  # exported once, never rewritten


def test_a_corrupt_version_leaves_no_directory(published, tmp_path):
    _, (n1,) = published()
    corrupt(n1.path)
    repo = tmp_path / "repo"
    with pytest.raises(CorruptCheckpointError):
        export_version(n1.path, n1.sha256, n1.model_name, n1.version, repo)
    assert not (repo / "sparse_sharing" / str(n1.version)).exists()


def test_a_task_pruned_to_a_constant_exports(local_env, tmp_path):
    env = local_env()
    model, norm = random_served_model(env.cfg, seed=4)
    with torch.no_grad():
        model.set_masks("cvr", {k: torch.zeros_like(m) for k, m in model.masks()["cvr"].items()})
    path = tmp_path / "const.ckpt"
    save_checkpoint(path, model, config=env.cfg, spec=SERVE_SPEC.to_dict(),
                    normalizer=norm.to_dict())  # fmt: skip
    from checkpoints.registry import sha256_file

    out = export_version(str(path), sha256_file(path)[0], "m", 7, tmp_path / "repo")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    s = model.schema
    feeds = {"sparse": np.ones((3, s.n_sparse), np.int64),
             "multi": np.zeros((3, s.n_multi, s.multi_max_len), np.int64),
             "dense": np.zeros((3, s.n_dense), np.float32)}  # fmt: skip
    _, cvr, _ = session.run(["ctr", "cvr", "ctcvr"], feeds)
    assert cvr.shape == (3,) and np.allclose(cvr, cvr[0])
    assert sorted(os.listdir(tmp_path / "repo" / "m")) == ["7", "config.pbtxt"]


def test_models_without_task_subnetworks_are_refused(local_env, tmp_path):
    env = local_env()
    from dataclasses import replace

    from lt4rec.data import field_schema

    cfg = replace(env.cfg, model=replace(env.cfg.model, name="mmoe"))
    model = build_model(cfg.model, field_schema(SERVE_SPEC, cfg.data))
    path = save_checkpoint(tmp_path / "mmoe.ckpt", model, config=cfg)
    from checkpoints.registry import sha256_file

    with pytest.raises(OnnxExportError, match="only sparse_sharing"):
        export_version(str(path), sha256_file(path)[0], "mmoe", 1, tmp_path / "repo")


def test_export_onnx_command(published, tmp_path):
    env, (n1,) = published()
    repo = tmp_path / "repo"
    r = CliRunner().invoke(
        app, ["models", "export-onnx", str(n1.version), "--repo", str(repo),
              "--config", str(env.path)],
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert (repo / "sparse_sharing" / str(n1.version) / "model.onnx").is_file()
    r = CliRunner().invoke(
        app, ["models", "export-onnx", "99", "--repo", str(repo), "--config", str(env.path)]
    )
    assert r.exit_code == 2 and "version 99 does not exist" in r.stderr
