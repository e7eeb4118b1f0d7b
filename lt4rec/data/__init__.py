"""Data contract: feature spec, Parquet loading, hashing and batching, the simulator."""

from lt4rec.data.batch import TASKS, Batch, FieldSchema

__all__ = ["TASKS", "Batch", "FieldSchema"]
