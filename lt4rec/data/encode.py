"""Arrow table -> tensors, vectorised (no per-row Python).

* sparse columns: hashed per field into ``[1, hash_buckets)``, null -> 0 (:mod:`.hashing`);
* multi-valued ``list<string>`` columns: flattened, hashed once, scattered into
  ``[N, multi_max_len]`` (longer lists truncated, shorter padded with 0);
* dense columns: float64 -> standardised float32 (:class:`~lt4rec.data.normalizer.Normalizer`);
* labels: float32 in {0, 1}; a null or non-binary label is a :class:`DataError`.

The same function serves batch files (:func:`lt4rec.data.load_parquet`) and the online
worker, which encodes small tables of joined examples with the training normalizer.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from lt4rec.config.data import DataConfig
from lt4rec.data.batch import FieldSchema
from lt4rec.data.dataset import EncodedDataset
from lt4rec.data.hashing import hash_column, hash_keys
from lt4rec.data.normalizer import Normalizer
from lt4rec.data.spec import DataError, FeatureSpec


def field_schema(spec: FeatureSpec, cfg: DataConfig) -> FieldSchema:
    """Embedding-table shapes a model needs for data encoded with ``spec`` and ``cfg``."""
    return FieldSchema(
        sparse=spec.sparse,
        multi=spec.multi,
        dense=spec.dense,
        hash_buckets=cfg.hash_buckets,
        multi_max_len=cfg.multi_max_len,
    )


def _column(table: pa.Table, name: str) -> pa.Array:
    col = table.column(name)
    return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)


def encode_multi(values: pa.Array, field: str, buckets: int, max_len: int) -> np.ndarray:
    """list<string> column -> [N, max_len] int64 hashed ids, 0-padded, truncated."""
    n = len(values)
    out = np.zeros((n, max_len), dtype=np.int64)
    if n == 0 or pa.types.is_null(values.type):
        return out
    flat = pc.list_flatten(values)
    if len(flat) == 0:
        return out
    codes = hash_column(flat, field, buckets)  # [n_flat]
    parents = pc.list_parent_indices(values).to_numpy().astype(np.int64)  # [n_flat]
    lengths = pc.list_value_length(values).fill_null(0).to_numpy().astype(np.int64)  # [N]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # [N]
    pos = np.arange(len(codes), dtype=np.int64) - starts[parents]  # [n_flat]
    keep = pos < max_len
    out[parents[keep], pos[keep]] = codes[keep]
    return out


def dense_matrix(table: pa.Table, fields: tuple[str, ...]) -> np.ndarray:
    """Raw dense values [N, n_dense] float64, missing -> NaN."""
    cols = []
    for name in fields:
        arr = pc.cast(_column(table, name), pa.float64())
        cols.append(arr.fill_null(np.nan).to_numpy(zero_copy_only=False))
    if not cols:
        return np.zeros((table.num_rows, 0), dtype=np.float64)
    return np.stack(cols, axis=1)


def fit_normalizer(table: pa.Table, spec: FeatureSpec) -> Normalizer:
    """Mean / std of the dense columns of ``table`` (the training data)."""
    return Normalizer.fit(spec.dense, dense_matrix(table, spec.dense))


def _label(table: pa.Table, name: str, source: str) -> np.ndarray:
    arr = _column(table, name)
    if arr.null_count:
        raise DataError(f"{source}: label column {name!r} has {arr.null_count} null value(s)")
    values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
    bad = (values != 0) & (values != 1)
    if bad.any():
        raise DataError(f"{source}: label column {name!r} must be 0/1, found {values[bad][0]!r}")
    return values.astype(np.float32)


def encode_table(
    table: pa.Table,
    spec: FeatureSpec,
    cfg: DataConfig,
    normalizer: Normalizer | None = None,
    source: str = "table",
) -> EncodedDataset:
    """Encode ``table`` (columns per ``spec``) into tensors.

    ``normalizer`` is the training-data standardisation; pass ``None`` only for training data,
    in which case it is fitted on ``table`` (and stored on the result's ``normalizer``).
    """
    spec.check_table(table.schema, source)
    n = table.num_rows
    if normalizer is None:
        normalizer = fit_normalizer(table, spec)
    try:
        sparse = np.zeros((n, len(spec.sparse)), dtype=np.int64)  # [N, n_sparse]
        for j, name in enumerate(spec.sparse):
            sparse[:, j] = hash_column(_column(table, name), name, cfg.hash_buckets)
        multi = np.zeros((n, len(spec.multi), cfg.multi_max_len), dtype=np.int64)
        for j, name in enumerate(spec.multi):
            multi[:, j, :] = encode_multi(
                _column(table, name), name, cfg.hash_buckets, cfg.multi_max_len
            )
    except TypeError as exc:
        raise DataError(f"{source}: {exc}") from exc
    try:
        dense = normalizer.apply(spec.dense, dense_matrix(table, spec.dense))
    except ValueError as exc:
        raise DataError(f"{source}: {exc}") from exc
    user = None
    if spec.user is not None:
        user = torch.from_numpy(hash_keys(_column(table, spec.user), spec.user))
    return EncodedDataset(
        sparse=torch.from_numpy(sparse),
        multi=torch.from_numpy(multi),
        dense=torch.from_numpy(dense),
        click=torch.from_numpy(_label(table, spec.click, source)),
        conversion=torch.from_numpy(_label(table, spec.conversion, source)),
        user=user,
        normalizer=normalizer,
    )
