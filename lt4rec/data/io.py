"""Reading example Parquet files (a file, a directory tree such as the archive, or a list).

Every file is checked against the spec before anything is encoded, so a missing column or an
empty file fails with a message naming the file and the column.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lt4rec.config.data import DataConfig
from lt4rec.data.dataset import EncodedDataset
from lt4rec.data.encode import encode_table
from lt4rec.data.normalizer import Normalizer
from lt4rec.data.spec import DataError, FeatureSpec

PathArg = str | Path | Sequence[str | Path]


def parquet_files(path: PathArg) -> list[Path]:
    """Expand ``path`` to a sorted list of Parquet files.

    A directory is searched recursively for ``*.parquet`` (e.g. the archive's ``dt=*/`` dirs);
    a list may mix files and directories. Order is deterministic (sorted within a directory).
    """
    items = [path] if isinstance(path, str | Path) else list(path)
    if not items:
        raise DataError("no Parquet path given")
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*.parquet") if f.is_file())
            if not found:
                raise DataError(f"{p}: directory contains no *.parquet files")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{p}: no such file or directory")
    return files


def read_examples(path: PathArg, spec: FeatureSpec) -> pa.Table:
    """The spec's columns of every file under ``path``, concatenated in file order."""
    tables = []
    for f in parquet_files(path):
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{f}: not a readable Parquet file ({exc})") from exc
        schema = pf.schema_arrow
        spec.check_table(schema, str(f))
        if pf.metadata.num_rows == 0:
            raise DataError(f"{f}: file has no rows")
        cols = list(spec.required_columns)
        tables.append(pf.read(columns=cols))
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"{path}: files have incompatible column types ({exc})") from exc


def load_parquet(
    path: PathArg,
    spec: FeatureSpec,
    cfg: DataConfig,
    normalizer: Normalizer | None = None,
) -> tuple[EncodedDataset, Normalizer]:
    """Read and encode examples.

    Pass ``normalizer=None`` for the training data (it is fitted here, on this data only) and
    the returned normalizer for validation / test / online data.
    """
    table = read_examples(path, spec)
    source = str(path) if isinstance(path, str | Path) else ", ".join(map(str, path))
    data = encode_table(table, spec, cfg, normalizer, source=source)
    assert data.normalizer is not None
    return data, data.normalizer
