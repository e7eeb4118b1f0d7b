"""Test helpers shared by the suite: random multi-task data and the model check."""

from lt4rec.testing.checks import check_model, check_prune
from lt4rec.testing.data import RandomDataset, random_batch, random_schema

__all__ = ["RandomDataset", "check_model", "check_prune", "random_batch", "random_schema"]
