"""Small servable models and random ``/predict`` instances (tests and serving benchmarks).

:func:`random_served_model` builds a ``sparse_sharing`` model with random weights, random
per-task masks and nonzero biases, so two seeds give visibly different predictions (a test
can tell which version answered). :func:`random_instances` draws request instances of every
feature kind of :data:`SERVE_SPEC` (strings, ints, lists, floats, and missing values).
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import torch

from lt4rec.config import AppConfig, DataConfig, ModelConfig
from lt4rec.data.batch import TASKS
from lt4rec.data.encode import field_schema
from lt4rec.data.normalizer import Normalizer
from lt4rec.data.spec import FeatureSpec
from lt4rec.models import SparseSharing, build_model

SERVE_SPEC = FeatureSpec(
    sparse=("user_id", "item_id", "hour"),
    multi=("tags",),
    dense=("quality", "price"),
    click="click",
    conversion="conversion",
    id="impression_id",
    time="ts",
    user="user_id",
)


def small_config(
    hash_buckets: int = 1009, embedding_dim: int = 4, bottom: tuple[int, ...] = (16, 8)
) -> AppConfig:
    """An AppConfig with a small ``sparse_sharing`` model (fast to build, save and load)."""
    base = AppConfig()
    return replace(
        base,
        data=DataConfig(hash_buckets=hash_buckets, multi_max_len=4),
        model=ModelConfig(embedding_dim=embedding_dim, bottom=bottom, tower=(4,)),
    )


def random_served_model(
    cfg: AppConfig, spec: FeatureSpec = SERVE_SPEC, seed: int = 0, density: float = 0.4
) -> tuple[SparseSharing, Normalizer]:
    """A ``sparse_sharing`` model with random masks of ``density`` and its normalizer."""
    torch.manual_seed(seed)
    model = build_model(cfg.model, field_schema(spec, cfg.data))
    if not isinstance(model, SparseSharing):
        raise ValueError(f"model.name must be sparse_sharing, got {cfg.model.name!r}")
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        model.embeddings.weight.mul_(20.0)  # spread the logits: instances score differently
        for lay in model.masked_layers():
            lay.weight.mul_(3.0)
        for task in TASKS:
            masks = {k: (torch.rand(m.shape, generator=g) < density).float()
                     for k, m in model.masks()[task].items()}  # fmt: skip
            model.set_masks(task, masks)
            for lay in model.masked_layers():
                lay.bias[task].copy_(torch.randn(lay.bias[task].shape, generator=g) * 0.3)
    model.eval()
    rng = random.Random(seed)
    normalizer = Normalizer(
        spec.dense,
        tuple(rng.uniform(-1, 1) for _ in spec.dense),
        tuple(rng.uniform(0.5, 2) for _ in spec.dense),
    )
    return model, normalizer


def random_instances(
    n: int, seed: int = 0, missing: float = 0.1, spec: FeatureSpec = SERVE_SPEC
) -> list[dict[str, Any]]:
    """``n`` instances of ``spec``'s features, each absent with probability ``missing``.

    Sparse field ``j``: strings (``j % 3 == 0``), strings or ints (1), ints (2); multi-valued:
    0-3 strings; dense field ``j``: floats (even ``j``) or floats and ints (odd ``j``).
    """
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        inst: dict[str, Any] = {}
        for j, name in enumerate(spec.sparse):
            k = rng.randrange(500 if j == 0 else 300)
            kind = j % 3 if j % 3 != 1 else rng.choice((0, 2))
            inst[name] = f"{name[0]}{k}" if kind == 0 else k % (24 if j % 3 == 2 else 300)
        for name in spec.multi:
            inst[name] = [f"t{rng.randrange(40)}" for _ in range(rng.randrange(4))]
        for j, name in enumerate(spec.dense):
            inst[name] = rng.choice([rng.uniform(0, 100), rng.randrange(100)]) if j % 2 else (
                rng.uniform(0, 1))  # fmt: skip
        out.append({k: v for k, v in inst.items() if rng.random() >= missing})
    return out
