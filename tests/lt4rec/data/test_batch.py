"""Batch.take: one row selection for index tensors and bool masks."""

from __future__ import annotations

import torch

from lt4rec.data import Batch


def _batch(user: bool) -> Batch:
    n = 5
    return Batch(
        sparse=torch.arange(n * 2).reshape(n, 2),
        multi=torch.arange(n * 6).reshape(n, 2, 3),
        dense=torch.arange(n, dtype=torch.float32).reshape(n, 1),
        click=torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0]),
        conversion=torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0]),
        user=torch.arange(10, 15) if user else None,
    )


def test_take_by_mask_and_by_index_agree():
    b = _batch(user=True)
    by_mask = b.take(b.click > 0)
    by_index = b.take(torch.tensor([0, 2, 4]))
    for got in (by_mask, by_index):
        assert len(got) == 3
        assert torch.equal(got.sparse, b.sparse[[0, 2, 4]])
        assert torch.equal(got.multi, b.multi[[0, 2, 4]])
        assert torch.equal(got.dense[:, 0], torch.tensor([0.0, 2.0, 4.0]))
        assert torch.equal(got.conversion, torch.tensor([1.0, 0.0, 1.0]))
        assert got.user is not None and got.user.tolist() == [10, 12, 14]


def test_take_keeps_a_missing_user_missing():
    assert _batch(user=False).take(torch.tensor([1])).user is None
