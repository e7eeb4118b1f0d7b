"""Random multi-task data with the shapes of the :class:`~lt4rec.data.batch.Batch` contract."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from lt4rec.data.batch import Batch, FieldSchema


def random_schema(
    n_sparse: int = 3,
    n_multi: int = 1,
    n_dense: int = 2,
    hash_buckets: int = 97,
    multi_max_len: int = 4,
) -> FieldSchema:
    """A small field schema (names ``s0..``, ``m0..``, ``d0..``)."""
    return FieldSchema(
        sparse=tuple(f"s{i}" for i in range(n_sparse)),
        multi=tuple(f"m{i}" for i in range(n_multi)),
        dense=tuple(f"d{i}" for i in range(n_dense)),
        hash_buckets=hash_buckets,
        multi_max_len=multi_max_len,
    )


def random_batch(
    schema: FieldSchema,
    n: int,
    generator: torch.Generator | None = None,
    ctr: float = 0.3,
    cvr: float = 0.3,
) -> Batch:
    """``n`` random rows whose labels depend on the first sparse field (learnable signal)."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    sparse = torch.randint(1, schema.hash_buckets, (n, schema.n_sparse), generator=g)
    multi = torch.randint(
        0, schema.hash_buckets, (n, schema.n_multi, schema.multi_max_len), generator=g
    )
    dense = torch.randn(n, schema.n_dense, generator=g)
    signal = (sparse[:, 0] % 2).float() if schema.n_sparse else torch.zeros(n)
    click = (torch.rand(n, generator=g) < ctr * (0.5 + signal)).float()
    conv = click * (torch.rand(n, generator=g) < cvr * (1.5 - signal)).float()
    user = torch.randint(0, max(2, n // 8), (n,), generator=g)
    return Batch(sparse=sparse, multi=multi, dense=dense, click=click, conversion=conv, user=user)


@dataclass(frozen=True)
class RandomDataset:
    """An in-memory dataset with the ``batches`` API of ``EncodedDataset``."""

    data: Batch

    @classmethod
    def make(cls, schema: FieldSchema, n: int, seed: int = 0) -> RandomDataset:
        return cls(random_batch(schema, n, torch.Generator().manual_seed(seed)))

    def __len__(self) -> int:
        return len(self.data)

    def batches(
        self, batch_size: int, shuffle: bool, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for s in range(0, n, batch_size):
            yield self.data.take(order[s : s + batch_size])
