"""Data contract: feature spec, Parquet loading, hashing and batching, the simulator."""

from lt4rec.data.batch import TASKS, Batch, FieldSchema
from lt4rec.data.dataset import EncodedDataset
from lt4rec.data.encode import encode_table, field_schema, fit_normalizer
from lt4rec.data.io import load_parquet, parquet_files, read_examples
from lt4rec.data.normalizer import Normalizer
from lt4rec.data.spec import DataError, FeatureSpec, SpecError

__all__ = [
    "TASKS",
    "Batch",
    "DataError",
    "EncodedDataset",
    "FeatureSpec",
    "FieldSchema",
    "Normalizer",
    "SpecError",
    "encode_table",
    "field_schema",
    "fit_normalizer",
    "load_parquet",
    "parquet_files",
    "read_examples",
]
