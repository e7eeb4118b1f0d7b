"""Model registry: ``build_model(cfg, schema)`` by ``cfg.name``."""

from __future__ import annotations

from lt4rec.config.model import ModelConfig
from lt4rec.data.batch import FieldSchema
from lt4rec.models.baselines import ESMM, SharedBottom, SingleTask
from lt4rec.models.blocks import MultiTaskModel
from lt4rec.models.cvr import AITM, ESCM2
from lt4rec.models.mtl import PLE, CrossStitch, MMoE
from lt4rec.models.sparse_sharing import SparseSharing

MODELS: dict[str, type[MultiTaskModel]] = {
    cls.name: cls
    for cls in (SingleTask, SharedBottom, ESMM, MMoE, PLE, CrossStitch, AITM, ESCM2, SparseSharing)
}


def build_model(cfg: ModelConfig, schema: FieldSchema) -> MultiTaskModel:
    """Instantiate the model named ``cfg.name`` for ``schema`` (uses torch's current RNG)."""
    cls = MODELS.get(cfg.name)
    if cls is None:
        raise ValueError(f"unknown model {cfg.name!r}; known models: {', '.join(sorted(MODELS))}")
    if schema.n_sparse + schema.n_multi + schema.n_dense == 0:
        raise ValueError("field schema has no features (no sparse, multi or dense fields)")
    if schema.hash_buckets < 2:
        raise ValueError(f"field schema hash_buckets={schema.hash_buckets} must be >= 2")
    return cls(cfg, schema)
