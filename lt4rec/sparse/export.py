"""Export a task's masked subnetwork as a compact inference network (:class:`SparseTaskNet`).

``export_task`` compacts the masked MLP (:mod:`.compaction`: dead / unused neurons and unread
inputs removed, constant neurons folded into biases), then stores every surviving layer as a
small dense matrix or as CSR (:mod:`.formats`). The network returns the same logits as the
dense masked network (``weight * mask``) within float rounding; device-agnostic (CPU tested,
CUDA through cuSPARSE).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from lt4rec.sparse.compaction import CompactLayer, CompactPlan, compact
from lt4rec.sparse.formats import (
    LayerFormat,
    Objective,
    choose_formats,
    layer_step,
    to_csr,
    weight_bytes,
)
from lt4rec.sparse.layers import MaskedLayer

FORMAT_VERSION = "1"


class SparseTaskNet(nn.Module):
    """Compact per-task MLP: ``forward(x [B, in]) -> logits [B]`` (``[B, out]`` if out > 1)."""

    input_index: torch.Tensor  # [in'] int64 buffer
    constant: torch.Tensor  # [out] float32 buffer, the output when no layer survives

    def __init__(self, plan: CompactPlan, formats: Sequence[LayerFormat]) -> None:
        super().__init__()
        if len(formats) != len(plan.layers):
            raise ValueError(f"{len(formats)} formats for {len(plan.layers)} layers")
        self.in_features = plan.in_features
        self.out_features = plan.out_features
        self.original_shapes = plan.original_shapes
        self.formats: tuple[LayerFormat, ...] = tuple(formats)
        self.activations = tuple(ly.activation for ly in plan.layers)
        self.nnz = tuple(ly.nnz for ly in plan.layers)
        self.shapes = tuple(
            (int(ly.weight.shape[0]), int(ly.weight.shape[1])) for ly in plan.layers
        )
        # Reading every input in order needs no gather.
        self.gather = plan.input_index.numel() != plan.in_features
        self.register_buffer("input_index", plan.input_index.clone())
        self.register_buffer("constant", plan.constant.clone())
        for i, (ly, fmt) in enumerate(zip(plan.layers, formats, strict=True)):
            weight = to_csr(ly.weight) if fmt == "csr" else ly.weight.clone()
            self.register_buffer(f"weight{i}", weight)
            self.register_buffer(f"bias{i}", ly.bias.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, in] float32 -> logits [B] (or [B, out] when the last layer is wider than 1)."""
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"expected x [B, {self.in_features}], got {tuple(x.shape)}")
        if not self.shapes:  # output independent of x
            out = self.constant.unsqueeze(0).expand(x.shape[0], -1).clone()  # [B, out]
            return out[:, 0] if self.out_features == 1 else out
        h = x.index_select(1, self.input_index) if self.gather else x  # [B, in']
        h = h.t().contiguous()  # [in', B]: every layer is W @ h
        for i, act in enumerate(self.activations):
            h = layer_step(getattr(self, f"weight{i}"), getattr(self, f"bias{i}"), h)  # [out_i, B]
            if act == "relu":
                h = h.relu_()
        return h[0] if self.out_features == 1 else h.t()

    def stats(self) -> dict[str, Any]:
        """Parameter counts, bytes and per-layer shape / density / format."""
        layers = []
        total_bytes = self.input_index.numel() * 8
        params = 0
        for i, ((out_f, in_f), fmt) in enumerate(zip(self.shapes, self.formats, strict=True)):
            nnz = self.nnz[i]
            wb = weight_bytes(out_f, in_f, nnz, fmt)
            stored = nnz if fmt == "csr" else out_f * in_f
            layers.append(
                {
                    "shape": [out_f, in_f],
                    "nnz": nnz,
                    "density": nnz / (out_f * in_f),
                    "format": fmt,
                    "bytes": wb + out_f * 4,
                    "activation": self.activations[i],
                }
            )
            total_bytes += wb + out_f * 4
            params += stored + out_f
        orig = sum(o * i + o for o, i in self.original_shapes)
        return {
            "in_features": self.in_features,
            "inputs_read": int(self.input_index.numel()) if self.shapes else 0,
            "original_shapes": [list(s) for s in self.original_shapes],
            "original_params": orig,
            "nonzero_weights": sum(self.nnz),
            "params": params,
            "bytes": total_bytes if self.shapes else self.out_features * 4,
            "layers": layers,
        }

    def save(self, path: str | Path) -> None:
        """Write the network to one safetensors file (atomically: temp file + rename)."""
        tensors: dict[str, torch.Tensor] = {
            "input_index": self.input_index.cpu(),
            "constant": self.constant.cpu(),
        }
        for i, fmt in enumerate(self.formats):
            w: torch.Tensor = getattr(self, f"weight{i}").cpu()
            tensors[f"bias{i}"] = getattr(self, f"bias{i}").cpu()
            if fmt == "csr":
                tensors[f"crow{i}"] = w.crow_indices()
                tensors[f"col{i}"] = w.col_indices()
                tensors[f"values{i}"] = w.values()
            else:
                tensors[f"weight{i}"] = w
        meta = {
            "version": FORMAT_VERSION,
            "in_features": self.in_features,
            "out_features": self.out_features,
            "original_shapes": [list(s) for s in self.original_shapes],
            "shapes": [list(s) for s in self.shapes],
            "formats": list(self.formats),
            "activations": list(self.activations),
        }
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        save_file(
            {k: v.contiguous() for k, v in tensors.items()}, str(tmp), {"lt4rec": json.dumps(meta)}
        )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> SparseTaskNet:
        """Read a file written by :meth:`save`; raises ``ValueError`` naming the file if bad."""
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {})["lt4rec"])
            tensors = load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types
            raise ValueError(f"{path}: not a SparseTaskNet file ({exc})") from exc
        if meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported version {meta.get('version')!r}")
        layers = []
        for i, ((out_f, in_f), fmt) in enumerate(zip(meta["shapes"], meta["formats"], strict=True)):
            if fmt == "csr":
                w = torch.sparse_csr_tensor(
                    tensors[f"crow{i}"].long(),
                    tensors[f"col{i}"].long(),
                    tensors[f"values{i}"],
                    size=(out_f, in_f),
                    check_invariants=True,  # the file is input: validate it
                ).to_dense()
            else:
                w = tensors[f"weight{i}"]
            layers.append(CompactLayer(w, tensors[f"bias{i}"], meta["activations"][i]))
        plan = CompactPlan(
            in_features=int(meta["in_features"]),
            input_index=tensors["input_index"],
            layers=tuple(layers),
            constant=tensors["constant"],
            out_features=int(meta["out_features"]),
            original_shapes=tuple((int(o), int(i)) for o, i in meta["original_shapes"]),
        )
        return cls(plan, meta["formats"]).to(device)


def export_task(
    layers: Sequence[MaskedLayer],
    *,
    csr_threshold: float | None = None,
    objective: Objective = "latency",
    batch_size: int = 512,
    device: torch.device | str | None = None,
) -> SparseTaskNet:
    """Build the compact inference network of one task's subnetwork.

    ``csr_threshold``: layers whose remaining density is below it are stored as CSR. ``None``
    chooses per layer (see :func:`lt4rec.sparse.formats.choose_formats`): by measured speed at
    ``batch_size`` on ``device`` (``objective="latency"``) or by size (``"memory"``).
    ``device`` defaults to the device of the first layer's weight.
    """
    if not layers:
        raise ValueError("export_task needs at least one MaskedLayer")
    dev = torch.device(device) if device is not None else layers[0].weight.device
    plan = compact(layers)
    formats = choose_formats(
        plan.layers,
        csr_threshold=csr_threshold,
        objective=objective,
        batch_size=batch_size,
        device=dev,
    )
    return SparseTaskNet(plan, formats).to(dev)
