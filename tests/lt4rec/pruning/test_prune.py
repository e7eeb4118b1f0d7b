# mypy: allow-untyped-defs
"""Magnitude pruning: never revives, prunes the smallest, respects scope and rates."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lt4rec.config.model import PruneConfig
from lt4rec.pruning import Mask, prune
from lt4rec.testing.checks import check_prune


def _weights(seed: int, shapes=((6, 5), (4, 6), (1, 4))) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {f"layers.{i}.weight": torch.randn(s, generator=g) for i, s in enumerate(shapes)}


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rate=st.floats(0.01, 0.99),
    scope=st.sampled_from(["layer", "global"]),
    keep=st.floats(0.0, 1.0),
    factor=st.floats(0.0, 1.0),
)
def test_prune_never_revives_and_only_removes(seed, rate, scope, keep, factor):
    w = _weights(seed)
    g = torch.Generator().manual_seed(seed + 1)
    mask = Mask({k: (torch.rand(v.shape, generator=g) < keep).float() for k, v in w.items()})
    hp = PruneConfig(rate=rate, scope=scope, output_rate_factor=factor)
    new = check_prune(w, mask, hp)  # the shared check: 0/1 and never revives
    for k in mask:
        assert bool((new[k] <= mask[k]).all()), f"{k}: a pruned weight was revived"
    assert new.num_nonzero <= mask.num_nonzero


def test_layer_scope_removes_rate_of_remaining_smallest_first():
    w = {"a.weight": torch.arange(1.0, 11.0).view(2, 5), "out.weight": torch.ones(1, 4)}
    hp = PruneConfig(rate=0.2, scope="layer", output_rate_factor=0.0)
    m1 = prune(w, Mask.ones_like(w), hp)
    assert m1["a.weight"].flatten().tolist() == [0, 0] + [1] * 8  # |1|, |2| removed
    assert m1["out.weight"].sum() == 4  # factor 0: output layer untouched
    m2 = prune(w, m1, hp)
    # 20 % of the 8 remaining (round(1.6) = 2): the next two smallest, 3 and 4
    assert m2["a.weight"].flatten().tolist() == [0, 0, 0, 0] + [1] * 6


def test_global_scope_uses_one_threshold_across_layers():
    w = {
        "a.weight": torch.tensor([[0.1, 0.2, 5.0, 6.0]]),
        "b.weight": torch.tensor([[0.3, 7.0]]),
        "out.weight": torch.tensor([[4.0, 1.0, 2.0, 3.0]]),
    }
    hp = PruneConfig(rate=0.5, scope="global", output_rate_factor=0.5)
    m = prune(w, Mask.ones_like(w), hp)
    assert m["a.weight"].tolist() == [[0, 0, 1, 1]]
    assert m["b.weight"].tolist() == [[0, 1]]
    assert m["out.weight"].tolist() == [[1, 0, 1, 1]]  # own rate 0.25: the smallest of 4


def test_output_layer_pruned_at_lower_rate():
    w = _weights(3, shapes=((20, 20), (10, 20)))
    hp = PruneConfig(rate=0.5, output_rate_factor=0.5)
    m = prune(w, Mask.ones_like(w), hp)
    assert m["layers.0.weight"].mean().item() == pytest.approx(0.5)
    assert m["layers.1.weight"].mean().item() == pytest.approx(0.75)


def test_embeddings_pruned_only_when_enabled():
    w = {
        "embeddings.weight": torch.randn(10, 4),
        "l.weight": torch.randn(3, 4),
        "o.weight": torch.randn(1, 3),
    }
    hp = PruneConfig(rate=0.5)
    assert prune(w, Mask.ones_like(w), hp)["embeddings.weight"].sum() == 40
    on = dataclasses.replace(hp, prune_embeddings=True)
    assert prune(w, Mask.ones_like(w), on)["embeddings.weight"].sum() == 20


def test_mask_validation_and_stats():
    with pytest.raises(ValueError, match="other than 0 and 1"):
        Mask({"a": torch.tensor([0.0, 0.5])})
    m = Mask({"a": torch.tensor([[1.0, 0.0], [1.0, 1.0]])})
    assert m.num_nonzero == 3 and m.numel == 4
    assert m.density == 0.75 and m.sparsity == 0.25
    with pytest.raises(ValueError, match="shape"):
        prune({"a": torch.zeros(3)}, m, PruneConfig())
    with pytest.raises(ValueError, match="no matching weight"):
        prune({}, m, PruneConfig())


def test_without_an_output_layer_the_last_masked_layer_is_pruned_at_the_full_rate():
    w = {"a": torch.randn(8, 8), "b": torch.randn(4, 8)}
    hp = PruneConfig(rate=0.5, output_rate_factor=0.5)
    with_out = prune(w, Mask.ones_like(w), hp)
    without = prune(w, Mask.ones_like(w), hp, has_output=False)
    assert with_out["b"].mean().item() == 0.75 and without["b"].mean().item() == 0.5
    assert torch.equal(with_out["a"], without["a"])
