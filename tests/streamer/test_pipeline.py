"""The main job (``lt4rec run``) end to end on the real broker, at a small size."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lt4rec.config import load_app_config
from lt4rec_cli.main import app
from streamer.archive import archive_files
from streamer.pipeline import stream_paths

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_run_simulates_fits_streams_and_archives_exactly(kafka_bootstrap, tmp_path):
    """``run.live = false``: join in-process, then the worker in-process (no daemons)."""
    work, archive = tmp_path / "main", tmp_path / "my-archive"  # [archive] dir is honoured
    args = [
        "run",
        "--set", f"run.workdir={work}",
        "--set", f"archive.dir={archive}",
        "--set", f"kafka.bootstrap={kafka_bootstrap}",
        "--set", "sim.impressions=4000",
        "--set", "sim.days=1",
        "--set", "sim.users=500",
        "--set", "sim.items=200",
        "--set", "model.bottom=[32, 16]",
        "--set", "model.tower=[8]",
        "--set", "prune.rounds=1",
        "--set", "data.hash_buckets=1009",
        "--set", "run.live=false",  # the in-process pipeline (the live one: tests/streamer/system)
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((work / "summary.json").read_text())
    assert 0.0 <= summary["fit"]["ctr_auc"] <= 1.0
    check = summary["stream"]["archive_check"]
    assert check["impressions"] == 4000
    assert check["archive_rows"] == 4000
    assert check["missing"] == check["duplicate_rows"] == check["label_mismatches"] == 0
    assert summary["stream"]["replay"]["impressions"] == 4000
    assert (work / "checkpoints" / "sparse_sharing.ckpt").is_file()
    online = summary["stream"]["online"]  # the worker learned from the joined stream
    assert online["trained"]["examples"] == 4000 and online["trained"]["duplicates"] == 0
    assert online["start"].startswith("offline version") and online["version"] > 1
    for task in ("ctr", "cvr"):
        assert 0.0 <= online["rolling"][f"{task}_auc"] <= 1.0
        assert 0.0 <= online["offline_test"][f"{task}_auc"] <= 1.0
    test = online["progressive_test_period"]
    assert test["ctr_rows"] == 400  # the 10 % test split of 4000 impressions, each scored once
    assert 0.0 <= test["ctr_auc"] <= 1.0
    assert "worker, progressive on the test period" in result.output
    assert "offline fit, test split" in result.output
    assert (work / "fit" / "metrics.json").is_file()
    assert summary["stream"]["archive_dir"] == str(archive) and not (work / "archive").exists()
    assert len(archive_files(archive)) > 0 and (work / "state" / "joiner.db").is_file()
    again = CliRunner().invoke(app, args)  # the archive is not empty any more: refused at once
    assert again.exit_code == 2 and "already holds archive files" in again.output
    assert not (work / "sim").exists()  # before any work


def test_run_rejects_unknown_config_key(tmp_path):
    result = CliRunner().invoke(app, ["run", "--set", "sim.impresions=5"])
    assert result.exit_code == 2
    assert "sim.impresions" in result.output


def test_stream_paths_keep_configured_values_and_default_into_the_workdir(tmp_path):
    work = tmp_path / "w"
    assert stream_paths(load_app_config(), work) == (
        f"sqlite:///{work / 'state' / 'joiner.db'}", str(work / "archive"))  # fmt: skip
    cfg = load_app_config(overrides=["store.url='postgresql+psycopg://u@h/db'", "archive.dir=/a"])
    assert stream_paths(cfg, work) == ("postgresql+psycopg://u@h/db", "/a")
