"""The real Tencent Video sample splits, loads and encodes (4,322 rows)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from lt4rec.config import DataConfig
from lt4rec.data import DataError, FeatureSpec, load_parquet
from lt4rec.data.tencent import default_sample_path, split_tencent, tencent_spec

ROWS = 4_322
Split = tuple[Path, dict[str, int]]


def test_sample_is_where_expected() -> None:
    assert default_sample_path().is_file(), f"Tencent sample missing at {default_sample_path()}"


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    out = tmp_path_factory.mktemp("tencent")
    return out, split_tencent(None, out, seed=0)


def test_split_covers_all_rows_by_request(split: Split) -> None:
    out, counts = split
    assert sum(counts.values()) == ROWS
    assert 0.6 < counts["train"] / ROWS < 0.8 and counts["valid"] > 0 and counts["test"] > 0
    tables = {s: pq.read_table(out / f"{s}.parquet") for s in counts}
    ids = [i for t in tables.values() for i in t.column("impression_id").to_pylist()]
    assert len(set(ids)) == ROWS
    requests = [set(t.column("request_id").to_pylist()) for t in tables.values()]
    assert not (requests[0] & requests[1]) and not (requests[0] & requests[2])
    assert not (requests[1] & requests[2])


def test_split_is_deterministic_per_seed(split: Split, tmp_path: Path) -> None:
    out, counts = split
    assert split_tencent(None, tmp_path / "again", seed=0) == counts
    again = pq.read_table(tmp_path / "again" / "test.parquet")
    assert again.equals(pq.read_table(out / "test.parquet"))
    other = split_tencent(None, tmp_path / "other", seed=1)
    assert sum(other.values()) == ROWS
    assert not pq.read_table(tmp_path / "other" / "test.parquet").equals(again)


def test_loads_and_encodes(split: Split) -> None:
    out, counts = split
    spec = FeatureSpec.load(out / "spec.json")
    assert spec == tencent_spec() and spec.user == "uid"
    cfg = DataConfig(multi_max_len=8)
    files = [out / f"{s}.parquet" for s in ("train", "valid", "test")]
    data, norm = load_parquet(files, spec, cfg)
    assert len(data) == ROWS and norm.fields == ()
    assert data.sparse.shape == (ROWS, 15) and data.multi.shape == (ROWS, 5, 8)
    assert data.dense.shape == (ROWS, 0)
    assert int(data.click.sum()) == 1_677 and int(data.conversion.sum()) == 860
    assert bool((data.conversion <= data.click).all())
    assert data.user is not None and len(torch.unique(data.user)) == 500
    train, _ = load_parquet(out / "train.parquet", spec, cfg)
    assert len(train) == counts["train"]


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        split_tencent(tmp_path / "nope.parquet", tmp_path / "out")
