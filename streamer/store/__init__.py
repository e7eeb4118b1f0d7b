"""Durable joiner state: the :class:`StateStore` interface and its two backends."""

from __future__ import annotations

from streamer.store.base import (
    ORPHAN,
    PENDING,
    SINKS,
    TOMBSTONE,
    ChunkRef,
    Entry,
    Fenced,
    Meta,
    Output,
    OutRow,
    Sink,
    StateStore,
    StoreError,
    StoreTxn,
)
from streamer.store.memory import MemoryStore


def make_store(
    url: str, connect_timeout_s: float = 10.0, statement_timeout_s: float = 60.0
) -> StateStore:
    """``memory://`` -> :class:`MemoryStore`; any SQLAlchemy URL -> :class:`SqlStore`.

    A SQLite file's parent directory is created if missing; a URL that cannot be opened
    raises :class:`StoreError` naming it (password hidden). Timeouts: see :class:`SqlStore`.
    """
    if url == "memory://" or url.startswith("memory:"):
        return MemoryStore()
    if "://" not in url:
        raise StoreError(f"store url {url!r} is neither 'memory://' nor a SQLAlchemy URL")
    from streamer.store.sql import SqlStore

    return SqlStore(url, connect_timeout_s, statement_timeout_s)


__all__ = [
    "ORPHAN",
    "PENDING",
    "SINKS",
    "TOMBSTONE",
    "ChunkRef",
    "Entry",
    "Fenced",
    "MemoryStore",
    "Meta",
    "OutRow",
    "Output",
    "Sink",
    "StateStore",
    "StoreError",
    "StoreTxn",
    "make_store",
]
