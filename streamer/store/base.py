"""The joiner's durable state behind one interface, with two backends (memory, SQLAlchemy).

The store knows nothing about join rules: it keeps, per join partition ``p``,

* **entries** keyed by ``impression_id`` — an opaque, engine-encoded ``data`` string, a small
  ``state`` code (pending / orphan / tombstone) and a ``deadline`` (event time, ms) indexed so
  that ``due(watermark)`` finds the entries whose next action is due without a full scan;
* **meta** — the partition's epoch (fencing), owner and a JSON-able dict the engine writes in
  the same transaction as the entries (next offsets, per-topic max ts, seq counters, counters);
* the **outbox** — staged outputs per sink (``examples``, ``dlq``, ``archive``) numbered by a
  per-partition, per-sink ``seq``; archive rows are *sealed* into chunks before being written.

Every mutation happens inside :meth:`StateStore.transaction`, which first checks the epoch
(raising :class:`Fenced` when another owner claimed the partition) and commits atomically or
not at all. Both backends pass the same contract tests (tests/streamer/store/).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

Sink = Literal["examples", "dlq", "archive"]
SINKS: tuple[Sink, ...] = ("examples", "dlq", "archive")

PENDING = 0  # an impression whose window is open
ORPHAN = 1  # labels seen before their impression
TOMBSTONE = 2  # a finalised impression, kept for deduplication until the horizon passes


class StoreError(RuntimeError):
    """The state store cannot be opened or used (bad URL, server down, wrong backend)."""


class Fenced(RuntimeError):
    """Another owner claimed this join partition since our ``claim``: stop processing it."""


class Entry(NamedTuple):
    """One impression's join state as the store sees it (``data`` is engine-encoded)."""

    impression_id: str
    state: int
    deadline: int  # event time (ms) at which the entry needs attention: due when wm > deadline
    data: bytes


@dataclass(frozen=True)
class Output:
    """A staged output: an example, a DLQ record or an archive row (value = JSON)."""

    seq: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


OutRow = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers of a staged output


@dataclass(frozen=True)
class ChunkRef:
    """A sealed range of archive rows ``[first_seq, last_seq]`` of one partition."""

    partition: int
    first_seq: int
    last_seq: int


@dataclass
class Meta:
    """Per-partition bookkeeping written atomically with the entries it describes."""

    partition: int
    epoch: int = 0
    owner: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class StoreTxn(ABC):
    """Operations available inside one transaction of one partition."""

    partition: int

    @abstractmethod
    def get(self, ids: Sequence[str]) -> dict[str, Entry]:
        """Entries of these impression ids (missing ids are absent from the result)."""

    @abstractmethod
    def due(self, watermark: int, limit: int) -> list[Entry]:
        """Up to ``limit`` entries with ``deadline < watermark``, by (deadline, id)."""

    @abstractmethod
    def expire(self, state: int, watermark: int) -> int:
        """Delete every entry in ``state`` with ``deadline < watermark``; return how many.

        One statement, no rows read: how tombstones leave the store.
        """

    @abstractmethod
    def oldest(self, state: int, limit: int) -> list[Entry]:
        """Up to ``limit`` entries in ``state`` with the smallest deadlines."""

    @abstractmethod
    def put(self, entries: Sequence[Entry]) -> None:
        """Insert or replace entries."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None:
        """Delete entries (missing ids are ignored)."""

    @abstractmethod
    def stage(self, sink: Sink, first_seq: int, rows: Sequence[OutRow]) -> None:
        """Append ``rows`` to a sink's outbox as seqs ``first_seq, first_seq + 1, ...``."""

    @abstractmethod
    def read_meta(self) -> Meta:
        """The partition's meta as committed (plus this transaction's writes)."""

    @abstractmethod
    def write_meta(self, data: dict[str, Any]) -> None:
        """Replace the meta ``data`` dict (epoch and owner are untouched)."""

    @abstractmethod
    def pending(self, sink: Sink, limit: int, after_seq: int = -1) -> list[Output]:
        """Staged, unacknowledged outputs of ``sink`` with seq > ``after_seq``, by seq."""

    @abstractmethod
    def ack(self, sink: Sink, upto_seq: int) -> int:
        """Delete ``sink`` outputs with seq <= ``upto_seq`` (not for archive: see drop_chunk)."""

    @abstractmethod
    def seal(self, min_rows: int, max_rows: int) -> ChunkRef | None:
        """Seal the oldest unsealed archive rows (at least ``min_rows``) into a chunk."""

    @abstractmethod
    def chunks(self) -> list[ChunkRef]:
        """Sealed chunks not yet acknowledged, by first seq."""

    @abstractmethod
    def chunk_rows(self, chunk: ChunkRef) -> list[Output]:
        """The archive rows of a sealed chunk, by seq."""

    @abstractmethod
    def drop_chunk(self, chunk: ChunkRef) -> None:
        """Delete a sealed chunk and its rows (after the archive files are in place)."""


class StateStore(ABC):
    """Durable, transactional per-partition joiner state."""

    @abstractmethod
    def claim(self, partition: int, owner: str) -> Meta:
        """Bump ``partition``'s epoch, record ``owner`` and return the committed meta."""

    @abstractmethod
    def transaction(
        self, partition: int, epoch: int, durable: bool = False
    ) -> AbstractContextManager[StoreTxn]:
        """One atomic transaction; raises :class:`Fenced` if the epoch is not ``epoch``.

        ``durable`` asks for a commit that survives power loss too (used when sealing archive
        chunks); ordinary commits only need to survive a process crash.
        """

    @abstractmethod
    def partitions(self) -> list[int]:
        """Partitions that have meta in the store."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (the store stays valid on disk)."""

    def describe(self, exc: BaseException) -> str | None:
        """A one-line cause when ``exc`` is an error of this store's database, else None."""
        return None

    def transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` (a database error) may pass when the transaction is retried: a lost
        or timed-out connection, a lock wait; not a read-only database or a schema error."""
        return False


def iter_chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most ``size`` items (bounded SQL parameter lists)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
