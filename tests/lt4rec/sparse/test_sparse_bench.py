"""The benchmark helpers: magnitude pruning, interleaved timing, the side-by-side comparison."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lt4rec.sparse.bench import compare, interleaved_latency, markdown
from lt4rec.sparse.synthetic import magnitude_pruned_mlp


@settings(max_examples=30, deadline=None)
@given(density=st.floats(0.05, 1.0), scope=st.sampled_from(["layer", "global"]))
def test_magnitude_pruning_hits_density_and_keeps_largest(density, scope):
    layers = magnitude_pruned_mlp([30, 20, 10, 1], density, seed=1, scope=scope)
    total = sum(ly.mask.numel() for ly in layers)
    kept = sum(int(ly.mask.sum()) for ly in layers)
    assert abs(kept / total - density) <= 0.02 + 3 / total
    if scope == "layer":
        for ly in layers:
            kept_min = ly.weight.abs()[ly.mask].min()
            pruned = ly.weight.abs()[~ly.mask]
            assert pruned.numel() == 0 or bool(pruned.max() <= kept_min)
    assert [ly.activation for ly in layers] == ["relu", "relu", "none"]


def test_magnitude_pruning_rejects_bad_arguments():
    with pytest.raises(ValueError, match="density must be in"):
        magnitude_pruned_mlp([4, 1], 0.0)
    with pytest.raises(ValueError, match="scope must be"):
        magnitude_pruned_mlp([4, 1], 0.5, scope="row")


def test_interleaved_latency_times_every_function():
    calls = {"a": 0, "b": 0}

    def make(name):
        def fn():
            calls[name] += 1

        return fn

    lat = interleaved_latency({n: make(n) for n in calls}, repeats=7, device=torch.device("cpu"))
    assert set(lat) == {"a", "b"} and all(v >= 0 for v in lat.values())
    assert calls == {"a": 12, "b": 12}  # 5 warm-up + 7 timed each


def test_compare_reports_equal_predictions_and_smaller_memory():
    torch.set_num_threads(1)
    layers = magnitude_pruned_mlp([60, 48, 24, 1], 0.2, seed=3)
    r = compare(layers, batch_sizes=(1, 32), repeats=5)
    assert r["density"] == pytest.approx(0.2, abs=0.01)
    assert r["bytes"]["sparse_memory"] < r["bytes"]["dense_premasked"] < r["bytes"]["dense_masked"]
    assert r["memory_ratio"]["vs_dense_masked"] > 2
    for b in r["batches"].values():
        assert max(b["max_abs_diff"].values()) <= 1e-5
        assert set(b["latency_s"]) == {
            "dense_masked",
            "dense_premasked",
            "sparse_latency",
            "sparse_memory",
        }
    table = markdown({"tiny": r})
    assert table.count("| tiny |") == 2
