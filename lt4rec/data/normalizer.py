"""Standardisation of dense features, fitted on the training file only.

The same :class:`Normalizer` (stored in checkpoints via ``to_dict``) is applied unchanged to
validation, test and online data, so a model never sees statistics of data it is evaluated on.
Missing values (null / NaN / inf) are imputed with the training mean, i.e. they become exactly
0 after standardisation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Normalizer:
    """Per-field mean and standard deviation of the dense features."""

    fields: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]  # > 0; constant features get std 1

    def __post_init__(self) -> None:
        if not len(self.fields) == len(self.mean) == len(self.std):
            raise ValueError("normalizer: fields, mean and std must have the same length")
        if any(not np.isfinite(s) or s <= 0 for s in self.std):
            raise ValueError("normalizer: every std must be finite and > 0")
        if any(not np.isfinite(m) for m in self.mean):
            raise ValueError("normalizer: every mean must be finite")

    @classmethod
    def fit(cls, fields: Sequence[str], raw: np.ndarray) -> Normalizer:
        """Fit on raw training values ``raw`` [N, n_dense] float64 (NaN = missing)."""
        if raw.ndim != 2 or raw.shape[1] != len(fields):
            raise ValueError(f"normalizer: expected [N, {len(fields)}] values, got {raw.shape}")
        means, stds = [], []
        for j in range(raw.shape[1]):
            col = raw[:, j]
            col = col[np.isfinite(col)]
            m = float(col.mean()) if col.size else 0.0
            s = float(col.std()) if col.size else 1.0
            means.append(m)
            stds.append(s if np.isfinite(s) and s > 1e-12 else 1.0)
        return cls(tuple(fields), tuple(means), tuple(stds))

    def apply(self, fields: Sequence[str], raw: np.ndarray) -> np.ndarray:
        """Standardise ``raw`` [N, n_dense] float64 -> [N, n_dense] float32; missing -> 0,
        beyond float32's range -> its largest finite value."""
        if tuple(fields) != self.fields:
            raise ValueError(
                f"normalizer was fitted on dense fields {list(self.fields)}, "
                f"data has {list(fields)}"
            )
        if raw.shape[1] == 0:
            return np.zeros(raw.shape, dtype=np.float32)
        mean = np.asarray(self.mean, dtype=np.float64)
        std = np.asarray(self.std, dtype=np.float64)
        out = (raw - mean) / std
        out[~np.isfinite(out)] = 0.0
        limit = np.finfo(np.float32).max  # huge finite inputs stay finite in float32
        return np.clip(out, -limit, limit).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form for checkpoints."""
        return {"fields": list(self.fields), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalizer:
        """Inverse of :meth:`to_dict`; rejects missing or unknown keys."""
        keys = {"fields", "mean", "std"}
        if set(data) != keys:
            raise ValueError(f"normalizer: expected keys {sorted(keys)}, got {sorted(data)}")
        return cls(
            tuple(str(f) for f in data["fields"]),
            tuple(float(m) for m in data["mean"]),
            tuple(float(s) for s in data["std"]),
        )
