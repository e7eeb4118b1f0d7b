"""load_parquet: files, directory trees and lists; errors name the file and the column."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from lt4rec.config import DataConfig
from lt4rec.data import DataError, FeatureSpec, load_parquet, parquet_files

WriteFile = Callable[..., Path]

SPEC = FeatureSpec(
    sparse=("user_id", "item_id"),
    multi=("tags",),
    dense=("quality",),
    click="click",
    conversion="conversion",
    id="impression_id",
    time="ts",
    user="user_id",
)


@pytest.fixture
def write(tmp_path: Path) -> WriteFile:
    """Factory writing a small example file; returns its path."""

    def make(name: str, n: int = 4, offset: float = 0.0, drop: str | None = None) -> Path:
        table = pa.table(
            {
                "impression_id": [f"{name}-{k}" for k in range(n)],
                "ts": list(range(n)),
                "user_id": [f"u{k}" for k in range(n)],
                "item_id": [f"v{k}" for k in range(n)],
                "tags": [["a", "b"]] * n,
                "quality": [offset + k for k in range(n)],
                "click": [1] * n,
                "conversion": [0] * n,
            }
        )
        if drop is not None:
            table = table.drop_columns([drop])
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        return path

    return make


def test_file_then_valid_with_train_normalizer(write: WriteFile) -> None:
    cfg = DataConfig()
    train, norm = load_parquet(write("train.parquet"), SPEC, cfg)
    assert len(train) == 4 and norm.mean == (1.5,)
    valid, norm2 = load_parquet(str(write("valid.parquet", offset=10.0)), SPEC, cfg, norm)
    assert norm2 is norm
    assert valid.dense[:, 0].mean().item() == pytest.approx(10.0 / norm.std[0], rel=1e-5)


def test_directory_is_searched_recursively_in_sorted_order(
    write: WriteFile, tmp_path: Path
) -> None:
    write("archive/dt=2026-11-02/b.parquet", n=2)
    write("archive/dt=2026-11-01/a.parquet", n=3)
    (tmp_path / "archive" / "notes.txt").write_text("ignored")
    files = parquet_files(tmp_path / "archive")
    assert [f.parent.name for f in files] == ["dt=2026-11-01", "dt=2026-11-02"]
    data, _ = load_parquet(tmp_path / "archive", SPEC, DataConfig())
    assert len(data) == 5
    single, _ = load_parquet(files, SPEC, DataConfig())
    assert torch.equal(single.sparse, data.sparse)


def test_missing_column_names_column_and_file(write: WriteFile) -> None:
    path = write("bad.parquet", drop="quality")
    with pytest.raises(DataError, match=r"bad.parquet: missing column\(s\) 'quality'"):
        load_parquet(path, SPEC, DataConfig())


def test_missing_column_in_one_of_several_files(write: WriteFile) -> None:
    good = write("good.parquet")
    bad = write("sub/bad.parquet", drop="click")
    with pytest.raises(DataError, match=r"sub/bad.parquet: missing column\(s\) 'click'"):
        load_parquet([good, bad], SPEC, DataConfig())


def test_empty_file_is_a_clear_error(write: WriteFile) -> None:
    path = write("empty.parquet", n=0)
    with pytest.raises(DataError, match=r"empty\.parquet: file has no rows"):
        load_parquet(path, SPEC, DataConfig())


def test_missing_paths_and_empty_directories(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.parquet: no such file"):
        load_parquet(tmp_path / "nope.parquet", SPEC, DataConfig())
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"contains no \*\.parquet files"):
        load_parquet(tmp_path / "empty", SPEC, DataConfig())
    with pytest.raises(DataError, match="no Parquet path"):
        load_parquet([], SPEC, DataConfig())


def test_not_a_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.parquet"
    path.write_text("this is not parquet")
    with pytest.raises(DataError, match=r"junk\.parquet: not a readable Parquet file"):
        load_parquet(path, SPEC, DataConfig())
