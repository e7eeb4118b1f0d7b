"""Per-layer storage formats of an exported subnetwork (dense or CSR) and how to choose them.

Layers run in a transposed layout, ``h [features, B]``, so every layer is one
``addmm(bias[:, None], W, h)`` whether ``W`` is a dense ``[out, in]`` matrix or a
``torch.sparse_csr`` matrix (CSR @ dense is the fast sparse kernel on CPU (MKL) and CUDA
(cuSPARSE); dense @ CSR is not), and no transposes are needed between layers.

Whether CSR pays depends on density, shape, batch size and device: on one CPU core (see
``docs/benchmarks.md``) CSR beats a dense GEMM at batch 512 only below roughly 15-20 %
density and never at batch 1, while it always saves memory below 50 % density (int32
indices: 8 bytes per nonzero instead of 4 bytes per entry). ``choose_formats`` therefore
either applies a fixed density threshold, or picks per layer by objective: ``"memory"`` (the
smaller of the two) or ``"latency"`` (times both on the target device at the expected batch
size and keeps the faster).
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Literal

import torch

from lt4rec.sparse.compaction import CompactLayer

LayerFormat = Literal["dense", "csr"]
Objective = Literal["latency", "memory"]
FLOAT_BYTES = 4
INDEX_BYTES = 4  # int32 CSR indices
CSR_SPEEDUP = 0.9  # "latency" picks CSR only when it takes < 90 % of the dense time


def to_csr(weight: torch.Tensor) -> torch.Tensor:
    """Dense ``[out, in]`` float32 -> ``torch.sparse_csr``, int32 indices, exact zeros dropped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        csr = weight.to_sparse_csr()
        return torch.sparse_csr_tensor(
            csr.crow_indices().to(torch.int32),
            csr.col_indices().to(torch.int32),
            csr.values(),
            size=tuple(weight.shape),
            check_invariants=False,
        )


def weight_bytes(out_f: int, in_f: int, nnz: int, fmt: LayerFormat) -> int:
    """Bytes needed to store one weight matrix in ``fmt`` (bias not included)."""
    if fmt == "dense":
        return out_f * in_f * FLOAT_BYTES
    return nnz * (FLOAT_BYTES + INDEX_BYTES) + (out_f + 1) * INDEX_BYTES


def layer_step(weight: torch.Tensor, bias: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One layer in transposed layout: ``[out, in] @ h [in, B] + bias[:, None]`` -> [out, B].

    Fused ``addmm`` (dense anywhere, CSR on CPU via MKL); CSR elsewhere multiplies then adds
    the bias, the one form every sparse backend (cuSPARSE) accepts without broadcasting rules.
    """
    if weight.layout == torch.sparse_csr and h.device.type != "cpu":
        return torch.mm(weight, h).add_(bias.unsqueeze(1))
    return torch.addmm(bias.unsqueeze(1), weight, h)


def _median_seconds(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_layer(
    layer: CompactLayer, batch_size: int, device: torch.device, repeats: int = 15
) -> dict[LayerFormat, float]:
    """Median seconds of one forward step of ``layer`` in each format, interleaved."""
    dense = layer.weight.to(device)
    csr = to_csr(layer.weight).to(device)
    bias = layer.bias.to(device)
    h = torch.randn(layer.weight.shape[1], batch_size, device=device)  # [in, B]
    out: dict[LayerFormat, list[float]] = {"dense": [], "csr": []}
    with torch.no_grad():
        for _ in range(3):  # interleave so drifts in machine load hit both alike
            out["dense"].append(
                _median_seconds(lambda: layer_step(dense, bias, h), device, repeats)
            )
            out["csr"].append(_median_seconds(lambda: layer_step(csr, bias, h), device, repeats))
    return {fmt: statistics.median(ts) for fmt, ts in out.items()}


def choose_formats(
    layers: Sequence[CompactLayer],
    *,
    csr_threshold: float | None = None,
    objective: Objective = "latency",
    batch_size: int = 512,
    device: torch.device | str = "cpu",
) -> list[LayerFormat]:
    """Pick dense or CSR for every layer.

    With ``csr_threshold`` a layer is CSR iff its density is below it (deterministic).
    Otherwise ``objective="memory"`` picks the smaller format and ``"latency"`` times both
    formats at ``batch_size`` on ``device`` and keeps CSR only when it is clearly faster
    (``CSR_SPEEDUP``).
    """
    if csr_threshold is not None:
        if not 0.0 <= csr_threshold <= 1.0:
            raise ValueError(f"csr_threshold must be in [0, 1], got {csr_threshold}")
        return ["csr" if ly.density < csr_threshold else "dense" for ly in layers]
    if objective not in ("latency", "memory"):
        raise ValueError(f"objective must be 'latency' or 'memory', got {objective!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    formats: list[LayerFormat] = []
    dev = torch.device(device)
    for ly in layers:
        out_f, in_f = ly.weight.shape
        csr_b = weight_bytes(out_f, in_f, ly.nnz, "csr")
        dense_b = weight_bytes(out_f, in_f, ly.nnz, "dense")
        if objective == "memory":
            formats.append("csr" if csr_b < dense_b else "dense")
        elif ly.density > 0.5:  # never faster in any measurement; skip the timing
            formats.append("dense")
        else:
            times = time_layer(ly, batch_size, dev)
            # CSR must win clearly: near break-even, timing noise would flip the choice.
            formats.append("csr" if times["csr"] < CSR_SPEEDUP * times["dense"] else "dense")
    return formats
