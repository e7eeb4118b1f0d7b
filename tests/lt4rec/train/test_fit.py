# mypy: allow-untyped-defs
"""``lt4rec fit`` end to end on a small simulated data set (CLI and ``run_fit``)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from checkpoints import load_checkpoint
from lt4rec.config import SimConfig
from lt4rec.data.simulator import simulate
from lt4rec_cli.main import app

SMALL = [
    "data.hash_buckets=1009",
    "data.batch_size=256",
    "model.embedding_dim=4",
    "model.bottom=[16, 8]",
    "model.tower=[4]",
    "model.expert_hidden=[8]",
    "model.experts=2",
    "prune.rounds=2",
    "prune.rate=0.5",
    "prune.rewind_step=2",
    "train.lr=0.01",
    "train.threads=1",
    "train.epochs=2",
]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    simulate(SimConfig(impressions=4000, days=2, users=300, items=200, seed=3), out)
    return out


def _args(sim, out, model, *extra):
    args = [
        "fit",
        "--train",
        str(sim / "train.parquet"),
        "--valid",
        str(sim / "valid.parquet"),
        "--test",
        str(sim / "test.parquet"),
        "--features",
        str(sim / "spec.json"),
        "--model",
        model,
        "--json",
        str(out),
        "--seed",
        "1",
    ]
    for s in SMALL:
        args += ["--set", s]
    return args + list(extra)


def test_fit_sparse_sharing_writes_metrics_plots_and_checkpoint(sim, tmp_path):
    out = tmp_path / "m.json"
    ckpt = tmp_path / "m.ckpt"
    res = CliRunner().invoke(
        app,
        _args(
            sim,
            out,
            "sparse_sharing",
            "--plots",
            str(tmp_path / "plots"),
            "--checkpoint",
            str(ckpt),
        ),
    )
    assert res.exit_code == 0, res.output
    m = json.loads(out.read_text())
    for key in (
        "ctr_auc",
        "cvr_auc",
        "ctcvr_auc",
        "ctr_logloss",
        "cvr_logloss",
        "ctr_gauc",
        "density_ctr",
        "density_cvr",
        "shared_fraction",
        "nonzero_params",
        "train_seconds",
        "examples_per_s",
        "oracle_ctr_auc",
        "oracle_cvr_auc",
        "best_epoch",
    ):
        assert key in m, key
    assert 0.0 <= m["ctr_auc"] <= 1.0 and m["oracle_ctr_auc"] > 0.6
    assert m["density_ctr"] < 1.0 and m["density_cvr"] < 1.0
    assert m["nonzero_params"] < m["total_params"]
    assert set(m["pruning"]) == {"ctr", "cvr"} and len(m["pruning"]["cvr"]["rounds"]) == 3
    assert (tmp_path / "plots" / "pruning_curve.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "mask_overlap.png").stat().st_size > 1000
    ck = load_checkpoint(ckpt)
    assert ck.model_name == "sparse_sharing" and ck.spec is not None and ck.normalizer is not None
    model = ck.build_model()
    for t in ("ctr", "cvr"):
        assert ck.masks[t]["layers.0.weight"].mean().item() == pytest.approx(
            m[f"density_{t}"], abs=0.1
        )
    assert sum(int(v.numel()) for v in model.state_dict().values()) > 0


@pytest.mark.parametrize(
    "model", ["shared_bottom", "esmm", "mmoe", "ple", "cross_stitch", "single"]
)
def test_fit_every_dense_model(sim, tmp_path, model):
    out = tmp_path / "m.json"
    res = CliRunner().invoke(app, _args(sim, out, model, "--set", "train.epochs=1"))
    assert res.exit_code == 0, res.output
    m = json.loads(out.read_text())
    assert m["model"] == model and m["density_ctr"] == 1.0
    assert m["ctr_auc"] == m["ctr_auc"]  # not NaN


def test_fit_is_deterministic_for_a_seed(sim, tmp_path):
    from lt4rec.config import load_app_config
    from lt4rec.train.fit import run_fit

    cfg = load_app_config(None, [*SMALL, "model.name=shared_bottom", "train.epochs=1"])
    a = run_fit(
        cfg, sim / "train.parquet", sim / "valid.parquet", sim / "test.parquet", sim / "spec.json"
    ).metrics
    b = run_fit(
        cfg, sim / "train.parquet", sim / "valid.parquet", sim / "test.parquet", sim / "spec.json"
    ).metrics
    assert a["ctr_auc"] == b["ctr_auc"] and a["cvr_auc"] == b["cvr_auc"]
    torch.set_num_threads(1)


def test_unknown_model_exits_with_message(sim, tmp_path):
    res = CliRunner().invoke(app, _args(sim, tmp_path / "m.json", "transformer"))
    assert res.exit_code != 0
    assert "unknown model 'transformer'" in res.output
    assert "Traceback" not in res.output


def test_spec_data_mismatch_exits_with_message(sim, tmp_path):
    spec = json.loads((sim / "spec.json").read_text())
    spec["sparse"].append("no_such_column")
    bad = tmp_path / "spec.json"
    bad.write_text(json.dumps(spec))
    args = _args(sim, tmp_path / "m.json", "shared_bottom")
    args[args.index("--features") + 1] = str(bad)
    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0
    assert "no_such_column" in res.output and "Traceback" not in res.output


def test_oracle_columns_present_in_simulated_test(sim):
    assert {"p_click", "p_conversion"} <= set(
        pq.ParquetFile(sim / "test.parquet").schema_arrow.names
    )


@pytest.mark.parametrize("joint_start", ["init", "rewind"])
def test_fit_per_task_cvr_rate_and_joint_start(sim, tmp_path, joint_start):
    from lt4rec.config import load_app_config
    from lt4rec.train.fit import run_fit

    sets = [*SMALL, "train.epochs=1", "prune.cvr_rate=0.75", "prune.select=last"]
    sets.append(f"prune.joint_start={joint_start}")
    m = run_fit(
        load_app_config(None, sets),
        sim / "train.parquet",
        sim / "valid.parquet",
        sim / "test.parquet",
        sim / "spec.json",
    ).metrics
    torch.set_num_threads(1)
    ctr = [r["density"] for r in m["pruning"]["ctr"]["rounds"]]
    cvr = [r["density"] for r in m["pruning"]["cvr"]["rounds"]]
    assert ctr[1] == pytest.approx(0.5, abs=0.02)  # prune.rate
    assert cvr[1] == pytest.approx(0.25, abs=0.02)  # prune.cvr_rate
    assert m["density_ctr"] == pytest.approx(ctr[-1]) and m["density_cvr"] == pytest.approx(cvr[-1])
    assert m["density_cvr"] < m["density_ctr"] < 1.0
    assert m["cvr_auc"] == m["cvr_auc"] and m["ctr_auc"] == m["ctr_auc"]  # not NaN
