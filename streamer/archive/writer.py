"""Exactly-once Parquet archive of final labels (design doc "Commit order", step 2).

A sealed :class:`~streamer.joiner.types.ArchiveChunk` becomes one file per UTC day of the
impressions' event time: ``<archive>/dt=YYYY-MM-DD/part-pPPPP-FFFFFFFFFFFF-LLLLLLLLLLLL.parquet``
(partition, first and last seq of the chunk). Each file is written to a hidden temporary name,
fsynced, renamed into place and the directory fsynced, so a reader never sees half a file.
Rewriting a chunk after a crash (sealed, not acknowledged) produces the same names and
replaces the files: the archive holds every row exactly once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from streamer.archive.fastjson import table_from_json
from streamer.archive.schema import (
    BASE_FIELDS,
    BASE_NAMES,
    FEATURE_TYPES,
    arrow_schema,
    check_types,
    coerce,
    columnable,
    infer_type,
    load_schema,
    save_schema,
)
from streamer.joiner.types import ArchiveChunk

_DAY_MS = 86_400_000
_NONE = type(None)
# Python types Arrow converts to each feature type exactly as :func:`coerce` would.
_FAST_TYPES = {
    "string": (str, _NONE),
    "int64": (int, _NONE),
    "float64": (float, int, _NONE),
    "list<string>": (list, _NONE),
}
_EPOCH = dt.date(1970, 1, 1)


def day_of(ts_ms: int) -> str:
    """UTC date ``YYYY-MM-DD`` of an event time in ms."""
    return (_EPOCH + dt.timedelta(days=ts_ms // _DAY_MS)).isoformat()


def _clean(v: Any) -> Any:
    """``v`` with unpaired surrogates replaced by ``?`` (Parquet strings are UTF-8)."""
    if isinstance(v, str):
        return v.encode("utf-8", "replace").decode("utf-8")
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ArchiveWriter:
    """Writes sealed chunks; ``feature_types`` fixes feature column types up front;
    ``max_columns`` bounds the feature columns (``archive.max_columns``, see schema)."""

    def __init__(
        self, feature_types: Mapping[str, str] | None = None, max_columns: int = 1024
    ) -> None:
        self.feature_types = check_types(feature_types or {}, "feature spec")
        self.max_columns = max_columns
        self.coerced_nulls = 0  # feature values that did not fit their column type

    def _types(self, archive_dir: Path, rows: list[dict[str, Any]]) -> tuple[dict[str, str], bool]:
        """Stored types, extended by the spec and by the first value of new features while
        fewer than ``max_columns`` exist; whether rows need the ``extra_features`` column."""
        types, overflow = load_schema(archive_dir)
        changed = False
        for name, kind in self.feature_types.items():
            if name not in types:
                types[name] = kind
                changed = True
        for row in rows:
            for name, value in row["features"].items():
                if name in types or (inferred := infer_type(value)) is None:
                    continue
                if len(types) < self.max_columns and columnable(name):
                    types[name] = inferred
                    changed = True
                elif not overflow:
                    overflow = changed = True
        if changed:
            save_schema(archive_dir, types, overflow)
        return types, overflow

    def _feature(self, values: list[Any], kind: str) -> pa.Array:
        """One feature column: Arrow converts the common case; odd values go through coerce."""
        typ, ok = FEATURE_TYPES[kind], _FAST_TYPES[kind]
        if all(type(v) in ok for v in values):  # Arrow would truncate 2.5 into an int64
            try:
                return pa.array(values, type=typ)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
                pass
        fixed = [coerce(v, kind) for v in values]
        self.coerced_nulls += sum(
            1 for v, f in zip(values, fixed, strict=True) if f is None and v is not None
        )
        return pa.array(fixed, type=typ)

    def _table(
        self,
        rows: list[dict[str, Any]],
        types: dict[str, str],
        overflow: bool,
        clean: bool = False,
    ) -> pa.Table:
        fix = _clean if clean else (lambda v: v)
        arrays = [pa.array([fix(r[f.name]) for r in rows], type=f.type) for f in BASE_FIELDS]
        feats = [r["features"] for r in rows]
        for name, kind in types.items():
            arrays.append(self._feature([fix(f.get(name)) for f in feats], kind))
        if overflow:
            arrays.append(pa.array([_extra(f, types) for f in feats], type=pa.string()))
        return pa.Table.from_arrays(arrays, schema=arrow_schema(types, overflow))

    def _chunk_table(self, chunk: ArchiveChunk, root: Path) -> pa.Table:
        """All rows of the chunk: Arrow's JSON reader when it can, dicts otherwise."""
        raw = getattr(chunk.rows, "raw", None)
        if raw is not None:
            # New features (a fresh archive) are typed from the first row, so that the first
            # chunk takes the fast path too; rows it does not describe fall back below.
            table = table_from_json(raw, *self._types(root, _first_row(raw)))
            if table is not None:
                return table
        rows = list(chunk.rows)
        for r in rows:
            missing = [n for n in (*BASE_NAMES, "features") if n not in r]
            if missing:
                raise ValueError(f"archive chunk {chunk.name}: row without {missing}")
        types, overflow = self._types(root, rows)
        try:
            return self._table(rows, types, overflow)
        except UnicodeEncodeError:  # a lone surrogate (legal as a JSON escape): replace it
            return self._table(rows, types, overflow, clean=True)

    def write(self, chunk: ArchiveChunk, archive_dir: str | Path) -> list[Path]:
        """Write ``chunk`` (idempotent: same names, same rows); return the files, by day."""
        root = Path(archive_dir)
        root.mkdir(parents=True, exist_ok=True)
        if not chunk.rows:
            return []
        table = self._chunk_table(chunk, root)
        by_day: dict[int, list[int]] = {}
        for i, ts in enumerate(table.column("ts").to_pylist()):
            by_day.setdefault(ts // _DAY_MS, []).append(i)
        paths = []
        for day in sorted(by_day):
            folder = root / f"dt={day_of(day * _DAY_MS)}"
            folder.mkdir(exist_ok=True)
            path = folder / f"{chunk.name}.parquet"
            tmp = folder / f".{chunk.name}.parquet.tmp-{os.getpid()}"
            rows = by_day[day]
            part = table if len(rows) == table.num_rows else table.take(rows)
            with open(tmp, "wb") as f:
                pq.write_table(part, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            _fsync_dir(folder)
            paths.append(path)
        _fsync_dir(root)
        return paths


def _extra(features: Mapping[str, Any], types: Mapping[str, str]) -> str | None:
    """The row's features without a column, as ASCII JSON (None when there are none)."""
    rest = {k: v for k, v in features.items() if k not in types and v is not None}
    return json.dumps(rest, separators=(",", ":")) if rest else None


def _first_row(raw: Sequence[bytes]) -> list[dict[str, Any]]:
    """The first JSON row if it is an object with a ``features`` object, else nothing."""
    if not raw:
        return []
    try:
        row = json.loads(raw[0])
    except ValueError:
        return []
    ok = isinstance(row, dict) and isinstance(row.get("features"), dict)
    return [row] if ok else []


def archive_files(archive_dir: str | Path) -> list[Path]:
    """Committed archive files (temporary files excluded), sorted."""
    root = Path(archive_dir)
    return sorted(p for p in root.glob("dt=*/*.parquet") if not p.name.startswith("."))


def read_archive(archive_dir: str | Path) -> pa.Table:
    """Every committed row of the archive as one table (columns unified across files)."""
    files = archive_files(archive_dir)
    if not files:
        return pa.schema(BASE_FIELDS).empty_table()
    tables = [pq.read_table(f) for f in files]
    return pa.concat_tables(tables, promote_options="default")
