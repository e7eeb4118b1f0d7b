"""``lt4rec simulate``: flags override the config file; bad input exits non-zero, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from lt4rec_cli.main import app

runner = CliRunner()


def test_flags_override_config_file(tmp_path: Path) -> None:
    config = tmp_path / "sim.toml"
    config.write_text("[sim]\nimpressions = 999\ndays = 5\nusers = 300\nitems = 100\nseed = 1\n")
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["simulate", "--out", str(out), "--impressions", "2000", "--seed", "4",
         "--config", str(config), "--set", "sim.valid_fraction=0.2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "wrote 2000 impressions" in result.output
    summary = json.loads((out / "summary.json").read_text())
    cfg = summary["config"]
    assert (cfg["impressions"], cfg["seed"], cfg["days"], cfg["users"]) == (2000, 4, 5, 300)
    assert cfg["valid_fraction"] == 0.2
    assert pq.ParquetFile(out / "valid.parquet").metadata.num_rows == 400
    assert pq.read_table(out / "train.parquet").column("impression_id")[0].as_py() == "i4-000000000"


def test_bad_values_exit_nonzero_with_message(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "o"), "--impressions", "0"])
    assert result.exit_code == 2
    assert "impressions" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "o"), "--set", "sim.nope=1"])
    assert result.exit_code == 2 and "sim.nope" in result.output
    result = runner.invoke(
        app, ["simulate", "--out", str(tmp_path / "o"), "--set", "sim.start=yesterday"]
    )
    assert result.exit_code == 2 and "start" in result.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = runner.invoke(app, ["simulate", "--out", str(blocker), "--impressions", "10"])
    assert result.exit_code == 2 and "not a directory" in result.output
