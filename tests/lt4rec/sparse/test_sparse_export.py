"""SparseTaskNet reproduces the dense masked network (1e-5) in every format, and round-trips."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lt4rec.sparse import DenseMaskedNet, SparseTaskNet, export_task
from lt4rec.sparse.synthetic import random_masked_mlp as build_layers

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
TOL = {"rtol": 1e-5, "atol": 1e-5}


@st.composite
def masked_mlps(draw):
    """Random depth / widths / per-layer densities, including fully dead (0) and dense (1)."""
    depth = draw(st.integers(1, 4))
    dims = [draw(st.integers(1, 12)) for _ in range(depth)] + [draw(st.sampled_from([1, 1, 2]))]
    densities = [draw(st.sampled_from([0.0, 0.05, 0.3, 0.7, 1.0])) for _ in range(depth)]
    seed = draw(st.integers(0, 2**16))
    bias_scale = draw(st.sampled_from([0.0, 0.5, 3.0]))
    return build_layers(dims, densities, seed=seed, bias_scale=bias_scale)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers=masked_mlps(), threshold=st.sampled_from([0.0, 0.5, 1.01]), batch=st.integers(1, 9))
def test_predictions_equal_dense_masked_network(layers, threshold, batch):
    x = torch.randn(batch, layers[0].weight.shape[1]) * 2
    ref = DenseMaskedNet(layers)(x)
    net = export_task(layers, csr_threshold=min(threshold, 1.0))
    out = net(x)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, **TOL)
    stats = net.stats()
    assert stats["nonzero_weights"] <= sum(int(ly.mask.sum()) for ly in layers)
    assert stats["params"] <= stats["original_params"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("objective", ["latency", "memory"])
def test_realistic_mlp_every_format_and_device(device, objective):
    torch.manual_seed(0)
    layers = build_layers([300, 256, 128, 64, 1], [0.3, 0.3, 0.3, 0.3], seed=1)
    x = torch.randn(512, 300, device=device)
    ref = DenseMaskedNet(layers).to(device)(x)
    for net in (
        export_task(layers, csr_threshold=0.0, device=device),
        export_task(layers, csr_threshold=1.0, device=device),
        export_task(layers, objective=objective, batch_size=64, device=device),
    ):
        torch.testing.assert_close(net(x), ref, **TOL)
        torch.testing.assert_close(net(x[:1]), ref[:1], **TOL)


def test_memory_objective_stores_sparse_layers_as_csr_and_is_smaller():
    layers = build_layers([300, 256, 128, 64, 1], [0.3, 0.3, 0.3, 0.3], seed=2)
    net = export_task(layers, objective="memory")
    stats = net.stats()
    formats = [ly["format"] for ly in stats["layers"]]
    assert formats[:3] == ["csr", "csr", "csr"]
    assert formats[3] == "dense"  # the compacted last layer reads only live inputs: density 1
    dense_bytes = DenseMaskedNet(layers).param_bytes()
    assert stats["bytes"] * 2 <= dense_bytes
    for ly in stats["layers"]:
        assert 0 < ly["density"] <= 1


def test_threshold_decides_format_per_layer():
    layers = build_layers([20, 16, 8, 1], [0.1, 0.6, 1.0], seed=4)
    net = export_task(layers, csr_threshold=0.5)
    densities = [ly["density"] for ly in net.stats()["layers"]]
    assert net.formats == tuple("csr" if d < 0.5 else "dense" for d in densities)
    with pytest.raises(ValueError, match="csr_threshold must be in"):
        export_task(layers, csr_threshold=1.5)
    with pytest.raises(ValueError, match="objective must be"):
        export_task(layers, objective="speed")  # type: ignore[arg-type]


def test_save_load_round_trip(tmp_path):
    layers = build_layers([40, 32, 16, 1], [0.2, 0.0 + 0.4, 0.9], seed=5)
    net = export_task(layers, csr_threshold=0.5)
    path = tmp_path / "ctr.safetensors"
    net.save(path)
    loaded = SparseTaskNet.load(path)
    assert loaded.formats == net.formats
    assert loaded.stats() == net.stats()
    x = torch.randn(7, 40)
    torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)


def test_save_load_constant_network(tmp_path):
    layers = build_layers([5, 4, 1], [0.0, 1.0], seed=6, bias_scale=2.0)
    net = export_task(layers)
    assert net.stats()["layers"] == []
    net.save(tmp_path / "c.safetensors")
    x = torch.randn(3, 5)
    loaded = SparseTaskNet.load(tmp_path / "c.safetensors")
    torch.testing.assert_close(loaded(x), DenseMaskedNet(layers)(x))


def test_load_rejects_bad_file_naming_it(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=r"bad\.safetensors"):
        SparseTaskNet.load(bad)


def test_forward_rejects_wrong_input_width():
    net = export_task(build_layers([6, 3, 1], [1.0, 1.0]))
    with pytest.raises(ValueError, match=r"expected x \[B, 6\]"):
        net(torch.randn(2, 5))
