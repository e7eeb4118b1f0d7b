"""Parquet archive of final labels: exactly-once chunk files per UTC day."""

from __future__ import annotations

from streamer.archive.schema import FEATURE_TYPES, ArchiveSchemaError, load_types
from streamer.archive.writer import ArchiveWriter, archive_files, day_of, read_archive

__all__ = [
    "FEATURE_TYPES",
    "ArchiveSchemaError",
    "ArchiveWriter",
    "archive_files",
    "day_of",
    "load_types",
    "read_archive",
]
