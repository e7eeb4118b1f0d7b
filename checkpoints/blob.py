"""Reading a checkpoint's tensor blob without long GIL holds.

Servers and the worker load new versions in a background thread while their main thread
keeps answering. A plain ``read_bytes`` + slice + ``safetensors.torch.load`` copies the file
three times, each copy holding the GIL for tens of ms per 100 MB (a pause on the request
path). Here the blob is read in 1 MiB ``readinto`` blocks (the GIL is released during each)
into one aligned ``uint8`` tensor and hashed in blocks; the safetensors layout (8-byte
header length, JSON header, data; tensors sorted by alignment) is cut into tensors by torch,
which releases the GIL while it copies. Anything unusual (unknown dtype, misaligned offset)
falls back to ``safetensors.torch.load``, which validates the layout itself.
"""

from __future__ import annotations

import json
import math
from typing import IO, Any

import torch
from safetensors.torch import load as st_load

BLOCK = 1 << 20
DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip


def read_blob(f: IO[bytes], size: int) -> torch.Tensor:
    """The next ``size`` bytes of ``f`` as a ``uint8`` tensor [size] (shorter if the file is)."""
    blob = torch.empty(size, dtype=torch.uint8)
    view = blob.numpy().data  # a writable memoryview of the tensor's memory
    got = 0
    while got < size:
        n = f.readinto(view[got : got + BLOCK])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return blob[:got]


def update_hash(h: Any, blob: torch.Tensor) -> None:
    """``h.update`` over ``blob`` in blocks (hashlib releases the GIL on each)."""
    view = blob.numpy().data
    for start in range(0, len(view), BLOCK):
        h.update(view[start : start + BLOCK])


def safetensors_views(blob: torch.Tensor) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors ``blob`` (own memory each); ``ValueError`` if bad."""
    raw = blob.numpy()
    if len(raw) < 8:
        raise ValueError("safetensors blob shorter than its header length")
    n = int.from_bytes(raw[:8].tobytes(), "little")
    if not 0 < n <= len(raw) - 8:
        raise ValueError(f"safetensors header length {n} out of range")
    header = json.loads(raw[8 : 8 + n].tobytes())
    base = 8 + n
    out: dict[str, torch.Tensor] = {}
    try:
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype = DTYPES[info["dtype"]]
            shape = [int(d) for d in info["shape"]]
            begin, end = (int(x) for x in info["data_offsets"])
            size = math.prod(shape) * torch.empty(0, dtype=dtype).element_size()
            if not 0 <= begin <= end <= len(raw) - base or end - begin != size:
                raise ValueError(f"tensor {name}: data offsets {begin}..{end} do not fit")
            if begin % torch.empty(0, dtype=dtype).element_size():
                raise KeyError("misaligned")  # let safetensors copy it
            # a copy per tensor (torch releases the GIL while copying): no two tensors share
            # memory, so they can be saved again (safetensors refuses shared storage)
            out[name] = blob[base + begin : base + end].view(dtype).reshape(shape).clone()
    except (KeyError, TypeError, RuntimeError):
        return st_load(raw.tobytes())
    return out
