"""Compaction removes exactly the neurons and inputs that cannot change the output."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lt4rec.sparse import DenseMaskedNet, MaskedLayer, compact, export_task
from lt4rec.sparse.synthetic import random_masked_mlp as build_layers


def _layer(weight, bias, mask, act="relu") -> MaskedLayer:
    return MaskedLayer(
        torch.tensor(weight, dtype=torch.float32),
        torch.tensor(bias, dtype=torch.float32),
        torch.tensor(mask, dtype=torch.bool),
        act,
    )


def test_dead_neuron_bias_is_folded_into_next_layer():
    # hidden neuron 1 has no surviving input but bias 2.0 -> contributes relu(2.0) * 3.0
    l0 = _layer([[1.0, 2.0], [5.0, 5.0]], [0.0, 2.0], [[True, True], [False, False]])
    l1 = _layer([[1.0, 3.0]], [0.5], [[True, True]], "none")
    plan = compact([l0, l1])
    assert [tuple(ly.weight.shape) for ly in plan.layers] == [(1, 2), (1, 1)]
    assert plan.layers[1].bias.item() == pytest.approx(0.5 + 3.0 * 2.0)
    x = torch.tensor([[1.0, 1.0], [-4.0, 1.0]])
    ref = DenseMaskedNet([l0, l1])(x)
    torch.testing.assert_close(export_task([l0, l1], csr_threshold=0.0)(x), ref)
    assert ref.tolist() == pytest.approx([0.5 + 3.0 + 6.0, 0.5 + 0.0 + 6.0])


def test_dead_neuron_with_negative_bias_contributes_nothing():
    l0 = _layer([[1.0], [1.0]], [0.0, -2.0], [[True], [False]])
    l1 = _layer([[1.0, 7.0]], [0.0], [[True, True]], "none")
    plan = compact([l0, l1])
    assert plan.layers[1].bias.item() == 0.0  # relu(-2) = 0


def test_unused_neuron_and_unread_input_are_removed():
    # hidden neuron 0 is never read by the output; input 2 is read by no kept neuron
    l0 = _layer(
        [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]], [0.1, 0.2], [[True, True, True], [True, True, False]]
    )
    l1 = _layer([[9.0, 1.0]], [0.0], [[False, True]], "none")
    plan = compact([l0, l1])
    assert plan.input_index.tolist() == [0, 1]
    assert [tuple(ly.weight.shape) for ly in plan.layers] == [(1, 2), (1, 1)]


def test_removal_is_iterative_through_layers():
    # output reads only h2[0]; h2[0] reads only h1[1]; so h1[0], h2[1] and input 0 all go
    l0 = _layer([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0], [[True, False], [False, True]])
    l1 = _layer([[0.0, 2.0], [1.0, 1.0]], [0.0, 0.0], [[False, True], [True, True]])
    l2 = _layer([[1.0, 1.0]], [0.0], [[True, False]], "none")
    plan = compact([l0, l1, l2])
    assert plan.input_index.tolist() == [1]
    assert [tuple(ly.weight.shape) for ly in plan.layers] == [(1, 1), (1, 1), (1, 1)]


def test_constants_propagate_through_several_layers():
    # layer 0 is fully dead; layer 1 sees only constants -> whole network is constant
    l0 = _layer([[1.0, 1.0], [1.0, 1.0]], [1.0, -1.0], [[False, False], [False, False]])
    l1 = _layer([[2.0, 5.0]], [0.5], [[True, True]])
    l2 = _layer([[-3.0]], [1.0], [[True]], "none")
    plan = compact([l0, l1, l2])
    assert plan.layers == ()
    assert plan.constant.tolist() == pytest.approx([1.0 - 3.0 * (0.5 + 2.0)])
    net = export_task([l0, l1, l2])
    x = torch.randn(4, 2)
    torch.testing.assert_close(net(x), DenseMaskedNet([l0, l1, l2])(x))
    assert net(x).shape == (4,)


def test_zero_weight_under_true_mask_counts_as_pruned():
    l0 = _layer([[0.0, 1.0]], [0.0], [[True, True]])
    l1 = _layer([[1.0]], [0.0], [[True]], "none")
    assert compact([l0, l1]).input_index.tolist() == [1]


def test_shape_mismatch_names_the_layer():
    l0 = _layer([[1.0, 1.0]], [0.0], [[True, True]])
    l1 = _layer([[1.0, 1.0]], [0.0], [[True, True]], "none")
    with pytest.raises(ValueError, match="layer 1 expects 2 inputs but layer 0 has 1"):
        compact([l0, l1])
    with pytest.raises(ValueError, match="at least one layer"):
        compact([])


def test_random_magnitude_pruned_mlp_keeps_predictions(make_layers):
    layers = make_layers([30, 24, 16, 8, 1], [0.3, 0.3, 0.3, 0.3], seed=3)
    plan = compact(layers)
    assert sum(ly.weight.numel() for ly in plan.layers) <= sum(ly.weight.numel() for ly in layers)
    x = torch.randn(64, 30)
    net = export_task(layers, csr_threshold=0.5)
    torch.testing.assert_close(net(x), DenseMaskedNet(layers)(x), rtol=1e-5, atol=1e-5)


@st.composite
def _mlps(draw):
    depth = draw(st.integers(1, 4))
    dims = [draw(st.integers(1, 10)) for _ in range(depth)] + [1]
    densities = [draw(st.sampled_from([0.0, 0.1, 0.3, 0.6, 1.0])) for _ in range(depth)]
    return build_layers(dims, densities, seed=draw(st.integers(0, 2**16)))


@settings(max_examples=150, deadline=None)
@given(layers=_mlps())
def test_compaction_is_maximal(layers):
    """Every kept input is read, every kept hidden neuron has a surviving input."""
    plan = compact(layers)
    for i, ly in enumerate(plan.layers):
        nz = ly.weight != 0
        assert bool(nz.any(dim=0).all()), f"layer {i} keeps an input nobody reads"
        if i < len(plan.layers) - 1:
            assert bool(nz.any(dim=1).all()), f"layer {i} keeps a constant neuron"
    if plan.layers:
        assert plan.layers[0].weight.shape[1] == plan.input_index.numel()
        assert plan.layers[-1].weight.shape[0] == 1
