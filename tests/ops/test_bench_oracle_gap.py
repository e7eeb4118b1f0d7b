"""ops/bench/oracle_gap.py rebuilds the simulator's world exactly (its oracle row is the
oracle of the written files) and the latent-free variants score below it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow.parquet as pq
import pytest

from lt4rec.config.data import SimConfig
from lt4rec.data.simulator import simulate
from lt4rec.metrics.ranking import auc
from tests.ops.benchkit import load_bench


def test_oracle_row_is_the_written_oracle_and_latent_parts_matter(tmp_path, capsys):
    bench = load_bench("oracle_gap")
    cfg = dataclasses.replace(SimConfig(), impressions=60_000, days=2, seed=3)
    simulate(cfg, tmp_path)
    test = pq.read_table(tmp_path / "test.parquet").to_pandas()
    clicked = test["click"].to_numpy() == 1
    want = auc(test["p_conversion"].to_numpy()[clicked], test["conversion"].to_numpy()[clicked])

    rows = bench.oracle_gap(cfg)
    assert rows["clicked_test_rows"] == clicked.sum()
    assert rows["conversions"] == test["conversion"].to_numpy()[clicked].sum()
    assert np.isclose(rows["oracle"], want, atol=1e-9)
    # removing the user's latent taste and conversion bias loses signal the features lack
    assert rows["both"] < rows["oracle"] - 0.02
    assert rows["no user conv bias"] < rows["oracle"]

    assert bench.main(["--impressions", "20000", "--days", "2", "--seed", "1"]) == 0
    assert "both: CVR AUC" in capsys.readouterr().out


def test_bad_arguments_fail_with_a_message(capsys):
    bench = load_bench("oracle_gap")
    with pytest.raises(SystemExit) as exc:
        bench.main(["--impressions", "10"])
    assert exc.value.code == 2
    assert "--impressions must be >= 1000" in capsys.readouterr().err
