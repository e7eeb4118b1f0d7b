"""Column schema of the archive: fixed example columns plus one column per feature.

A feature's type is fixed the first time it is seen (or given up front as a feature spec) and
stored in ``<archive>/_schema.json``, so every file of the archive has the same column types:
``string`` (sparse / categorical), ``int64``, ``float64`` or ``list<string>`` (multi-valued).
A later value is converted to that type when it can be (``3`` -> ``3.0``, ``7`` -> ``"7"``)
and written as null otherwise (counted by the writer).

Column names are **injective** (:func:`column_name`): a feature keeps its name unless that
name is reserved (a base column, ``dt`` — the Hive partition key readers add — or
``extra_features``) or starts with ``feature_``; those get a ``feature_`` prefix. So ``click``
-> ``feature_click``, ``feature_click`` -> ``feature_feature_click``: two features never share
a column, and every file stays readable by ``pyarrow.dataset``.

At most ``archive.max_columns`` features get a column. Later ones (and names that cannot be
a column) are folded into the string column ``extra_features``: a JSON object of the row's
remaining features, null when there are none. It exists once the first row needed it
(``"overflow": true`` in ``_schema.json``), so the schema and memory stay bounded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

FEATURE_TYPES = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "list<string>": pa.list_(pa.string()),
}

BASE_FIELDS = [
    pa.field("impression_id", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("ts", pa.int64(), nullable=False),
    pa.field("label_ts", pa.int64(), nullable=False),
    pa.field("user_id", pa.string(), nullable=False),
    pa.field("item_id", pa.string(), nullable=False),
    pa.field("click", pa.int64(), nullable=False),
    pa.field("conversion", pa.int64(), nullable=False),
    pa.field("click_ts", pa.int64()),
    pa.field("conversion_ts", pa.int64()),
]
BASE_NAMES = [f.name for f in BASE_FIELDS]
OVERFLOW_COLUMN = "extra_features"
FEATURE_PREFIX = "feature_"
RESERVED = frozenset([*BASE_NAMES, "dt", OVERFLOW_COLUMN])
SCHEMA_FILE = "_schema.json"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class ArchiveSchemaError(ValueError):
    """An unusable feature type in a feature spec or in ``_schema.json``."""


def infer_type(value: Any) -> str | None:
    """Archive type of a feature value (``None``: unknown, e.g. a null value)."""
    if isinstance(value, bool | int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list<string>"
    return None


def _to_int64(value: Any) -> int | None:
    if isinstance(value, float) and not value.is_integer():
        return None
    n = int(value)
    return n if _INT64_MIN <= n <= _INT64_MAX else None


def coerce(value: Any, kind: str) -> Any:
    """``value`` as archive type ``kind``; ``None`` when it cannot be represented."""
    if value is None:
        return None
    is_list = isinstance(value, list | tuple)
    try:
        if kind == "string":
            return None if is_list else value if isinstance(value, str) else str(value)
        if kind == "int64":
            return None if is_list else _to_int64(value)
        if kind == "float64":
            return None if is_list else float(value)
        return [str(v) for v in value] if is_list else [str(value)]
    except (TypeError, ValueError, OverflowError):
        return None


def column_name(feature: str) -> str:
    """The column of a feature (injective, never a reserved name; see the module docstring)."""
    if feature in RESERVED or feature.startswith(FEATURE_PREFIX):
        return FEATURE_PREFIX + feature
    return feature


def feature_of_column(column: str) -> str:
    """The feature whose column is ``column`` (inverse of :func:`column_name`)."""
    if column.startswith(FEATURE_PREFIX):
        inner = column[len(FEATURE_PREFIX) :]
        if inner in RESERVED or inner.startswith(FEATURE_PREFIX):
            return inner
    return column


def columnable(feature: str) -> bool:
    """Whether ``feature`` can name a Parquet column (valid UTF-8, not empty)."""
    if not feature:
        return False
    try:
        feature.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def check_types(types: Mapping[str, str], where: str) -> dict[str, str]:
    bad = {k: v for k, v in types.items() if v not in FEATURE_TYPES}
    if bad:
        raise ArchiveSchemaError(
            f"{where}: unknown feature type(s) {bad} (known: {', '.join(FEATURE_TYPES)})"
        )
    return dict(types)


def load_schema(archive_dir: Path) -> tuple[dict[str, str], bool]:
    """Feature types stored in ``<archive>/_schema.json`` and whether ``extra_features``
    exists (empty, False if no schema yet)."""
    path = archive_dir / SCHEMA_FILE
    if not path.is_file():
        return {}, False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArchiveSchemaError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("features"), dict):
        raise ArchiveSchemaError(f"{path}: expected {{'features': {{name: type}}}}")
    return check_types(data["features"], str(path)), bool(data.get("overflow", False))


def load_types(archive_dir: Path) -> dict[str, str]:
    """Feature types stored in ``<archive>/_schema.json`` (empty if none yet)."""
    return load_schema(archive_dir)[0]


def save_schema(archive_dir: Path, types: Mapping[str, str], overflow: bool) -> None:
    """Atomically replace ``_schema.json`` (tmp + fsync + rename)."""
    path = archive_dir / SCHEMA_FILE
    tmp = archive_dir / f".{SCHEMA_FILE}.tmp-{os.getpid()}"
    body: dict[str, Any] = {"features": dict(types)}
    if overflow:
        body["overflow"] = True
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(body, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def arrow_schema(types: Mapping[str, str], overflow: bool = False) -> pa.Schema:
    """Base columns, one column per feature in ``types`` order, then ``extra_features``."""
    fields = list(BASE_FIELDS)
    fields += [pa.field(column_name(n), FEATURE_TYPES[t]) for n, t in types.items()]
    if overflow:
        fields.append(pa.field(OVERFLOW_COLUMN, pa.string()))
    return pa.schema(fields)
