"""Test helpers shared by the suite: random multi-task data, the model and loss checks."""

from lt4rec.testing.checks import check_model, check_prune
from lt4rec.testing.data import RandomDataset, random_batch, random_schema
from lt4rec.testing.feedback_checks import check_feedback_loss, random_stream

__all__ = [
    "RandomDataset",
    "check_feedback_loss",
    "check_model",
    "check_prune",
    "random_batch",
    "random_schema",
    "random_stream",
]
