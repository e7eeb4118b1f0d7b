"""The tensor contract between data loading and models.

Data loading (``lt4rec.data``) turns Parquet rows into :class:`Batch` objects; every model in
``lt4rec.models`` consumes them. Sparse values are hashed per field into
``[1, hash_buckets)``; id 0 is reserved for padding / missing, so no vocabulary is needed and
values unseen in training still get an embedding row at test and serving time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FieldSchema:
    """Shapes a model needs to build its embedding block (derived from the feature spec)."""

    sparse: tuple[str, ...]  # single-valued categorical fields
    multi: tuple[str, ...]  # multi-valued (list<string>) fields, mean-pooled by models
    dense: tuple[str, ...]  # numeric fields (already normalised by the loader)
    hash_buckets: int  # rows per field embedding table (id 0 = padding)
    multi_max_len: int

    @property
    def n_sparse(self) -> int:
        return len(self.sparse)

    @property
    def n_multi(self) -> int:
        return len(self.multi)

    @property
    def n_dense(self) -> int:
        return len(self.dense)


@dataclass(frozen=True)
class Batch:
    """One mini-batch of encoded examples.  B = batch size."""

    sparse: torch.Tensor  # [B, n_sparse] int64 in [0, hash_buckets)
    multi: torch.Tensor  # [B, n_multi, multi_max_len] int64, 0 = padding
    dense: torch.Tensor  # [B, n_dense] float32
    click: torch.Tensor  # [B] float32 in {0, 1}
    conversion: torch.Tensor  # [B] float32 in {0, 1}; meaningful where click == 1
    user: torch.Tensor | None = None  # [B] int64 user key for GAUC, None if the spec has none

    def __len__(self) -> int:
        return int(self.click.shape[0])

    def take(self, rows: torch.Tensor) -> Batch:
        """The rows ``rows`` of every tensor: int64 indices [K] or a bool mask [B]."""
        return Batch(
            sparse=self.sparse[rows],
            multi=self.multi[rows],
            dense=self.dense[rows],
            click=self.click[rows],
            conversion=self.conversion[rows],
            user=None if self.user is None else self.user[rows],
        )

    def to(self, device: torch.device | str) -> Batch:
        """Copy every tensor to ``device`` (non-blocking where possible)."""

        def mv(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(
            sparse=self.sparse.to(device, non_blocking=True),
            multi=self.multi.to(device, non_blocking=True),
            dense=self.dense.to(device, non_blocking=True),
            click=self.click.to(device, non_blocking=True),
            conversion=self.conversion.to(device, non_blocking=True),
            user=mv(self.user),
        )


TASKS: tuple[str, str] = ("ctr", "cvr")  # model output keys; CTCVR = sigmoid(ctr) * sigmoid(cvr)
