"""The event joiner: join rules, label policies and the transactional :class:`JoinEngine`."""

from __future__ import annotations

from streamer.joiner.engine import JoinEngine
from streamer.joiner.types import (
    ArchiveChunk,
    EngineStats,
    JsonRows,
    Output,
    PartitionStats,
    ProcessResult,
    SourceRecord,
)
from streamer.store import Fenced, make_store

__all__ = [
    "ArchiveChunk",
    "EngineStats",
    "Fenced",
    "JoinEngine",
    "JsonRows",
    "Output",
    "PartitionStats",
    "ProcessResult",
    "SourceRecord",
    "make_store",
]
