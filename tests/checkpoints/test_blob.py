"""The zero-copy safetensors reader gives exactly what safetensors.torch.load gives."""

from __future__ import annotations

import io
import json
import struct

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from checkpoints.blob import read_blob, safetensors_views


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "f32": torch.randn(3, 5, generator=g),
        "f64": torch.randn(2, generator=g, dtype=torch.float64),
        "bf16": torch.randn(4, generator=g).to(torch.bfloat16),
        "f16": torch.randn(3, generator=g).half(),
        "i64": torch.arange(7),
        "i32": torch.arange(3, dtype=torch.int32),
        "u8": torch.arange(5, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
    }


def test_views_equal_safetensors_load_for_every_dtype():
    raw = st_save(_tensors())
    blob = read_blob(io.BytesIO(b"xyz" + raw), len(raw) + 3)[3:]  # an offset start
    want = st_load(raw)
    got = safetensors_views(read_blob(io.BytesIO(raw), len(raw)))
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v), k
    shifted = safetensors_views(blob)  # misaligned base: falls back to a copy, same values
    for k, v in want.items():
        assert torch.equal(shifted[k], v), k


def test_read_blob_reads_in_blocks_and_stops_at_the_end():
    data = bytes(range(256)) * 10_000  # 2.5 MiB: several blocks
    blob = read_blob(io.BytesIO(data), len(data) + 100)
    assert blob.numel() == len(data) and blob.numpy().tobytes() == data


@pytest.mark.parametrize(
    "header",
    [
        {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}},  # size mismatch
        {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 400]}},  # out of range
    ],
)
def test_bad_layouts_are_refused(header):
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    raw = struct.pack("<Q", len(h)) + h + bytes(16)
    with pytest.raises(ValueError, match="do not fit"):
        safetensors_views(read_blob(io.BytesIO(raw), len(raw)))


def test_loaded_tensors_can_be_saved_again(tmp_path):
    # tensors of a loaded checkpoint go back into the next one (optimiser state, aux heads)
    from checkpoints import load_checkpoint, save_checkpoint
    from lt4rec.config import ModelConfig
    from lt4rec.models import build_model
    from lt4rec.testing import random_schema

    cfg = ModelConfig(embedding_dim=4, bottom=(8,), tower=(4,))
    model = build_model(cfg, random_schema())
    first = save_checkpoint(tmp_path / "a.ckpt", model, config=cfg, aux={"x": torch.ones(3)},
                            optimizer={"m": torch.zeros(2), "v": torch.ones(2)})  # fmt: skip
    ckpt = load_checkpoint(first)
    again = save_checkpoint(tmp_path / "b.ckpt", ckpt.build_model(), config=cfg,
                            aux=ckpt.aux, optimizer=ckpt.optimizer)  # fmt: skip
    assert torch.equal(load_checkpoint(again).aux["x"], torch.ones(3))
