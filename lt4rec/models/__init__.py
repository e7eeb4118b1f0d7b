"""Multi-task CTR/CVR models and the registry :func:`build_model`."""

from lt4rec.models.blocks import EmbeddingBlock, MultiTaskModel
from lt4rec.models.registry import MODELS, build_model
from lt4rec.models.sparse_sharing import SparseSharing

__all__ = ["MODELS", "EmbeddingBlock", "MultiTaskModel", "SparseSharing", "build_model"]
