"""Sparse inference: compact per-task subnetworks exported from masked models."""

from lt4rec.sparse.compaction import CompactLayer, CompactPlan, compact
from lt4rec.sparse.export import SparseTaskNet, export_task
from lt4rec.sparse.layers import MaskedLayer
from lt4rec.sparse.reference import DenseMaskedNet

__all__ = [
    "CompactLayer",
    "CompactPlan",
    "DenseMaskedNet",
    "MaskedLayer",
    "SparseTaskNet",
    "compact",
    "export_task",
]
