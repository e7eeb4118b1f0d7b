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
    infer_type,
    load_types,
    save_types,
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
    """Writes sealed chunks; ``feature_types`` fixes feature column types up front."""

    def __init__(self, feature_types: Mapping[str, str] | None = None) -> None:
        self.feature_types = check_types(feature_types or {}, "feature spec")
        self.coerced_nulls = 0  # feature values that did not fit their column type

    def _types(self, archive_dir: Path, rows: list[dict[str, Any]]) -> dict[str, str]:
        """Stored types, extended by the spec and by the first value of new features."""
        types = load_types(archive_dir)
        changed = False
        for name, kind in self.feature_types.items():
            if name not in types:
                types[name] = kind
                changed = True
        for row in rows:
            for name, value in row["features"].items():
                inferred = infer_type(value) if name not in types else None
                if inferred is not None:
                    types[name] = inferred
                    changed = True
        if changed:
            save_types(archive_dir, types)
        return types

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
        self, rows: list[dict[str, Any]], types: dict[str, str], clean: bool = False
    ) -> pa.Table:
        fix = _clean if clean else (lambda v: v)
        arrays = [pa.array([fix(r[f.name]) for r in rows], type=f.type) for f in BASE_FIELDS]
        feats = [r["features"] for r in rows]
        for name, kind in types.items():
            arrays.append(self._feature([fix(f.get(name)) for f in feats], kind))
        return pa.Table.from_arrays(arrays, schema=arrow_schema(types))

    def _chunk_table(self, chunk: ArchiveChunk, root: Path) -> pa.Table:
        """All rows of the chunk: Arrow's JSON reader when it can, dicts otherwise."""
        raw = getattr(chunk.rows, "raw", None)
        if raw is not None:
            # New features (a fresh archive) are typed from the first row, so that the first
            # chunk takes the fast path too; rows it does not describe fall back below.
            table = table_from_json(raw, self._types(root, _first_row(raw)))
            if table is not None:
                return table
        rows = list(chunk.rows)
        for r in rows:
            missing = [n for n in (*BASE_NAMES, "features") if n not in r]
            if missing:
                raise ValueError(f"archive chunk {chunk.name}: row without {missing}")
        types = self._types(root, rows)
        try:
            return self._table(rows, types)
        except UnicodeEncodeError:  # a lone surrogate (legal as a JSON escape): replace it
            return self._table(rows, types, clean=True)

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
