"""Dense-masked vs exported-sparse inference: latency and memory, measured side by side.

Used by ``ops/bench/sparse_inference.py`` (synthetic magnitude-pruned MLPs) and by
``ops/bench/offline.py`` (the trained ``sparse_sharing`` model's task subnetworks). Every
variant runs on the same input, interleaved call by call in a rotating order, so drifts in
machine load (2 shared cores) hit all variants alike; latency is the median per call.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from lt4rec.sparse.export import export_task
from lt4rec.sparse.layers import MaskedLayer
from lt4rec.sparse.reference import DenseMaskedNet


def interleaved_latency(
    fns: dict[str, Callable[[], object]], repeats: int, device: torch.device
) -> dict[str, float]:
    """Median seconds per call of every function, calls interleaved in a rotating order."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for n in names:  # warm-up
        for _ in range(5):
            fns[n]()
    sync()
    for r in range(repeats):
        for k in range(len(names)):
            n = names[(r + k) % len(names)]
            start = time.perf_counter()
            fns[n]()
            sync()
            times[n].append(time.perf_counter() - start)
    return {n: statistics.median(ts) for n, ts in times.items()}


def compare(
    layers: Sequence[MaskedLayer],
    *,
    batch_sizes: Sequence[int] = (1, 512),
    repeats: int | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """Latency and parameter memory of the dense masked net vs the exported subnets.

    Variants: ``dense_masked`` (weight * mask at every call, as the trained model computes
    it; stores weights + bool masks), ``dense_premasked`` (masks multiplied in once; weights
    only), and the exported :class:`SparseTaskNet` optimised for ``latency`` (formats chosen
    by timing at each batch size) and for ``memory`` (CSR wherever smaller).
    """
    dev = torch.device(device)
    dense = DenseMaskedNet(layers).to(dev).eval()
    premasked = DenseMaskedNet(layers, premasked=True).to(dev).eval()
    mem_net = export_task(layers, objective="memory", device=dev)
    gen = torch.Generator().manual_seed(seed)
    in_f = layers[0].weight.shape[1]
    total = sum(ly.mask.numel() for ly in layers)
    result: dict[str, Any] = {
        "shapes": [list(ly.weight.shape) for ly in layers],
        "density": sum(int(ly.mask.sum()) for ly in layers) / total,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "bytes": {
            "dense_masked": dense.param_bytes(),
            "dense_premasked": premasked.param_bytes(),
            "sparse_memory": mem_net.stats()["bytes"],
        },
        "sparse_memory_stats": mem_net.stats(),
        "batches": {},
    }
    for bs in batch_sizes:
        lat_net = export_task(layers, objective="latency", batch_size=bs, device=dev)
        x = torch.randn(bs, in_f, generator=gen).to(dev)  # [B, in]
        nets: dict[str, nn.Module] = {
            "dense_masked": dense,
            "dense_premasked": premasked,
            "sparse_latency": lat_net,
            "sparse_memory": mem_net,
        }
        with torch.no_grad():
            ref = dense(x)
            diffs = {n: float((net(x) - ref).abs().max()) for n, net in nets.items()}
            reps = repeats if repeats is not None else (2000 if bs <= 8 else 200)
            lat = interleaved_latency(
                {n: functools.partial(net, x) for n, net in nets.items()}, reps, dev
            )
        result["batches"][str(bs)] = {
            "latency_s": lat,
            "max_abs_diff": diffs,
            "sparse_latency_formats": list(lat_net.formats),
            "sparse_latency_bytes": lat_net.stats()["bytes"],
            "latency_ratio": {n: lat["dense_masked"] / lat[n] for n in nets},
        }
    b = result["bytes"]
    result["memory_ratio"] = {
        "vs_dense_masked": b["dense_masked"] / b["sparse_memory"],
        "vs_dense_premasked": b["dense_premasked"] / b["sparse_memory"],
    }
    return result


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """A Markdown table of :func:`compare` results (one block of rows per named case)."""
    rows = [
        "| case | density | batch | dense masked µs | dense premasked µs | sparse (latency) µs "
        "| sparse (memory) µs | latency ratio (best sparse) | dense masked KiB "
        "| sparse (memory) KiB | memory ratio | max abs diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        for bs, br in r["batches"].items():
            lat = br["latency_s"]
            best = min(lat["sparse_latency"], lat["sparse_memory"])
            rows.append(
                f"| {name} | {r['density']:.1%} | {bs} | {lat['dense_masked'] * 1e6:.1f} "
                f"| {lat['dense_premasked'] * 1e6:.1f} | {lat['sparse_latency'] * 1e6:.1f} "
                f"| {lat['sparse_memory'] * 1e6:.1f} | {lat['dense_masked'] / best:.2f}× "
                f"| {r['bytes']['dense_masked'] / 1024:.0f} "
                f"| {r['bytes']['sparse_memory'] / 1024:.0f} "
                f"| {r['memory_ratio']['vs_dense_masked']:.2f}× "
                f"({r['memory_ratio']['vs_dense_premasked']:.2f}× vs premasked) "
                f"| {max(br['max_abs_diff'].values()):.1e} |"
            )
    return "\n".join(rows)
