"""In-memory encoded examples and their mini-batching.

All tensors live on CPU; training moves each :class:`~lt4rec.data.batch.Batch` to the device
with ``Batch.to``. N = number of rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from lt4rec.data.batch import Batch
from lt4rec.data.normalizer import Normalizer


@dataclass(frozen=True)
class EncodedDataset:
    """Encoded examples of one or more Parquet files (or an online table)."""

    sparse: torch.Tensor  # [N, n_sparse] int64 in [0, hash_buckets)
    multi: torch.Tensor  # [N, n_multi, L] int64, 0 = padding
    dense: torch.Tensor  # [N, n_dense] float32, standardised
    click: torch.Tensor  # [N] float32 in {0, 1}
    conversion: torch.Tensor  # [N] float32 in {0, 1} (as in the file; 0 where click == 0)
    user: torch.Tensor | None = None  # [N] int64 hashed user key (GAUC), None without spec.user
    normalizer: Normalizer | None = None  # the dense standardisation that was applied

    def __post_init__(self) -> None:
        n = int(self.click.shape[0])
        tensors = {
            "sparse": self.sparse,
            "multi": self.multi,
            "dense": self.dense,
            "conversion": self.conversion,
        }
        if self.user is not None:
            tensors["user"] = self.user
        for name, t in tensors.items():
            if int(t.shape[0]) != n:
                raise ValueError(f"EncodedDataset: {name} has {t.shape[0]} rows, click has {n}")

    def __len__(self) -> int:
        return int(self.click.shape[0])

    def batch(self, idx: torch.Tensor) -> Batch:
        """Rows ``idx`` ([B] int64) as a :class:`Batch`."""
        return Batch(
            sparse=self.sparse.index_select(0, idx),
            multi=self.multi.index_select(0, idx),
            dense=self.dense.index_select(0, idx),
            click=self.click.index_select(0, idx),
            conversion=self.conversion.index_select(0, idx),
            user=None if self.user is None else self.user.index_select(0, idx),
        )

    def batches(
        self, batch_size: int, shuffle: bool, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        """All rows once in batches of ``batch_size`` (the last may be smaller).

        Without ``shuffle`` rows come in file order (time order for time-sorted data).
        """
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            yield self.batch(order[start : start + batch_size])

    def subset(self, idx: torch.Tensor) -> EncodedDataset:
        """A new dataset with rows ``idx`` ([M] int64)."""
        b = self.batch(idx)
        return EncodedDataset(
            b.sparse, b.multi, b.dense, b.click, b.conversion, b.user, self.normalizer
        )

    @staticmethod
    def concat(parts: Sequence[EncodedDataset]) -> EncodedDataset:
        """Rows of ``parts`` one after another (same field layout required)."""
        if not parts:
            raise ValueError("EncodedDataset.concat: nothing to concatenate")
        users = [p.user for p in parts]
        has_user = all(u is not None for u in users)
        return EncodedDataset(
            sparse=torch.cat([p.sparse for p in parts]),
            multi=torch.cat([p.multi for p in parts]),
            dense=torch.cat([p.dense for p in parts]),
            click=torch.cat([p.click for p in parts]),
            conversion=torch.cat([p.conversion for p in parts]),
            user=torch.cat([u for u in users if u is not None]) if has_user else None,
            normalizer=parts[0].normalizer,
        )
