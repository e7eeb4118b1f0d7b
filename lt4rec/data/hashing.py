"""Deterministic, vocabulary-free hashing of categorical values.

Why hashing: the online worker encodes examples it has never seen, so there can be no
vocabulary to grow. Every value is turned into its string form (so ``5`` and ``"5"`` agree,
whether a value arrived from Parquet or from JSON), hashed with SipHash keyed by the field
name (different fields get different salts, so equal strings in two fields do not share
collision patterns), and mapped into ``[1, buckets)``. Null becomes 0 (padding / missing).

Speed: arrays are dictionary-encoded first, so only the distinct values are hashed; the
per-row work is one vectorised ``take``. No Python loop runs per row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pandas.util import hash_array


def field_key(field: str) -> str:
    """16-character SipHash key derived from the field name (stable across runs/processes)."""
    return hashlib.blake2b(field.encode("utf-8"), digest_size=8).hexdigest()


def _as_strings(values: pa.Array | pa.ChunkedArray, field: str) -> pa.Array:
    """One contiguous string array (nulls kept); ints/bools become their decimal form."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], pa.string())
    t = values.type
    if pa.types.is_dictionary(t):
        values = values.cast(t.value_type)
        t = values.type
    if pa.types.is_string(t):
        return values
    if pa.types.is_large_string(t) or pa.types.is_integer(t) or pa.types.is_boolean(t):
        return pc.cast(values, pa.string())
    if pa.types.is_null(t):
        return pa.nulls(len(values), pa.string())
    if pa.types.is_floating(t):
        # Integral floats (e.g. ids that went through JSON/pandas as float) hash like ints.
        arr = values.to_numpy(zero_copy_only=False)
        mask = np.isnan(arr)
        if np.all((arr[~mask] % 1) == 0):
            ints = pa.array(np.where(mask, 0, arr).astype(np.int64), mask=mask)
            return pc.cast(ints, pa.string())
        return pc.cast(values, pa.string())
    raise TypeError(f"column {field!r}: cannot hash values of type {t}")


def hash_strings(values: np.ndarray, field: str) -> np.ndarray:
    """SipHash (keyed by ``field``) of an object array of Python strings -> uint64."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.uint64)
    return hash_array(values, hash_key=field_key(field), categorize=False)


def hash_column(values: pa.Array | pa.ChunkedArray, field: str, buckets: int) -> np.ndarray:
    """Hash a column to bucket ids in ``[1, buckets)``; null -> 0.  Output: [N] int64."""
    strings = _as_strings(values, field)
    n = len(strings)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    encoded = pc.dictionary_encode(strings)
    uniques = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
    codes = (hash_strings(uniques, field) % np.uint64(buckets - 1)).astype(np.int64) + 1
    idx = encoded.indices
    if idx.null_count:
        mask = idx.is_null().to_numpy(zero_copy_only=False)
        ids = idx.fill_null(0).to_numpy().astype(np.int64)
        out = codes[ids] if len(codes) else np.zeros(n, dtype=np.int64)
        out[mask] = 0
        return out
    return codes[idx.to_numpy().astype(np.int64)]


def hash_keys(values: pa.Array | pa.ChunkedArray, field: str) -> np.ndarray:
    """Near-unique 63-bit key per value (for grouping, e.g. GAUC by user); null -> 0.  [N] int64."""
    strings = _as_strings(values, field)
    if len(strings) == 0:
        return np.zeros(0, dtype=np.int64)
    encoded = pc.dictionary_encode(strings)
    uniques = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
    keys = (hash_strings(uniques, field) >> np.uint64(1)).astype(np.int64)
    keys = np.concatenate([keys, np.zeros(1, dtype=np.int64)])  # slot for null
    idx = encoded.indices.fill_null(len(uniques)).to_numpy().astype(np.int64)
    return keys[idx]


class BucketCache:
    """:func:`hash_column` of one field for Python values, memoised (exact: hashing is pure).

    A server encodes a few values per request; hashing each through Arrow costs tens of µs,
    a dictionary lookup well under one. Values are the strings :func:`_as_strings` would
    produce (callers turn ints into their decimal form); ``None`` is 0. At most ``max_size``
    entries are kept (the memo is cleared when full; ``max_size = 0`` disables it).
    """

    def __init__(self, field: str, buckets: int, max_size: int = 1_000_000) -> None:
        self.field = field
        self.buckets = buckets
        self.max_size = max_size
        self._memo: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._memo)

    def ids(self, values: Sequence[str | None]) -> np.ndarray:
        """Bucket ids ``[N]`` int64 of ``values`` (as ``hash_column`` of a string array)."""
        memo = self._memo
        out = np.zeros(len(values), dtype=np.int64)
        missing: dict[str, list[int]] = {}
        for i, v in enumerate(values):
            if v is None:
                continue
            hit = memo.get(v)
            if hit is None:
                missing.setdefault(v, []).append(i)
            else:
                out[i] = hit
        if missing:
            keys = list(missing)
            codes = hash_column(pa.array(keys, pa.string()), self.field, self.buckets).tolist()
            if len(memo) + len(keys) > self.max_size:
                memo.clear()
            for key, code in zip(keys, codes, strict=True):
                out[missing[key]] = code
                if self.max_size:
                    memo[key] = code
        return out
