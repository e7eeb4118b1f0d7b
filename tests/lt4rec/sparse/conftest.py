"""Fixtures of the sparse-inference tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lt4rec.sparse import MaskedLayer
from lt4rec.sparse.synthetic import random_masked_mlp as build_layers


@pytest.fixture
def make_layers() -> Callable[..., list[MaskedLayer]]:
    """Factory: ``make_layers(dims, densities, seed=0, bias_scale=0.5)`` -> masked MLP."""
    return build_layers
