"""Value types of the :class:`~streamer.joiner.engine.JoinEngine` API (design doc "Engine API")."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from streamer.events import Event, EventKind, InvalidEvent
from streamer.store.base import Output, OutRow

__all__ = ["ArchiveChunk", "EngineStats", "JsonRows", "Output", "PartitionStats",
           "ProcessResult", "SourceRecord"]  # fmt: skip


@dataclass(frozen=True)
class SourceRecord:
    """One consumed input message, parsed (``event``) or not (``error``, goes to the DLQ)."""

    kind: EventKind  # which input topic: impression | click | conversion
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes  # original bytes, dead-lettered as they are
    event: Event | None
    error: InvalidEvent | None = None


@dataclass(frozen=True)
class ProcessResult:
    """What one ``process`` / ``flush_all`` transaction did."""

    partition: int
    applied: int  # records applied (valid or dead-lettered)
    skipped: int  # records below the stored next offset (replay after a crash)
    examples: int  # example outputs staged
    dlq: int  # DLQ records staged
    archived: int  # archive rows staged
    watermark: int | None  # after the transaction (ms); None until every topic was seen
    next_offsets: dict[str, int] = field(default_factory=dict)
    # Example / DLQ rows this transaction staged, per sink: (first seq, rows) segments, for
    # the daemon to produce without reading them back; None when too many were staged to keep.
    staged: dict[str, list[tuple[int, list[OutRow]]]] | None = field(
        default=None, compare=False, repr=False
    )
    # counter increments of this transaction (``EngineStats`` counter names), for metrics
    counters: dict[str, int] = field(default_factory=dict, compare=False, repr=False)


class JsonRows(Sequence[dict[str, Any]]):
    """Archive rows kept as their JSON bytes (``raw``), decoded only when accessed.

    The archive writer parses ``raw`` in bulk with Arrow; ``len`` never decodes.
    """

    def __init__(self, raw: list[bytes]) -> None:
        self.raw = raw
        self._rows: list[dict[str, Any]] | None = None

    def _decoded(self) -> list[dict[str, Any]]:
        if self._rows is None:
            self._rows = [json.loads(v) for v in self.raw]
        return self._rows

    def __len__(self) -> int:
        return len(self.raw)

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        return self._decoded()[i]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._decoded())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"JsonRows({len(self.raw)} rows)"


@dataclass(frozen=True)
class ArchiveChunk:
    """Sealed archive rows ``[first_seq, last_seq]`` of one partition (example dicts).

    From the engine, ``rows`` is a :class:`JsonRows` (decoded on access).
    """

    partition: int
    first_seq: int
    last_seq: int
    rows: Sequence[dict[str, Any]]

    @property
    def name(self) -> str:
        """Deterministic file stem of the chunk (same after a crash and rewrite)."""
        return f"part-p{self.partition:04d}-{self.first_seq:012d}-{self.last_seq:012d}"


@dataclass(frozen=True)
class PartitionStats:
    """Gauges and cumulative counters of one claimed partition (as last committed)."""

    partition: int
    epoch: int
    pending: int  # impressions with an open window
    orphans: int  # ids holding labels whose impression has not arrived
    tombstones: int
    watermark: int | None
    max_ts: dict[str, int]  # per input kind
    next_offsets: dict[str, int]  # per input topic
    outbox: dict[str, int]  # staged, unacknowledged outputs per sink (archive: rows)
    sealed_chunks: int
    counters: dict[str, int]  # events.*, duplicates.*, late.*, dlq.<reason>, examples.<kind>...


@dataclass(frozen=True)
class EngineStats:
    """All partitions this engine holds, plus counters summed over them."""

    partitions: dict[int, PartitionStats]
    totals: dict[str, int]

    @property
    def pending(self) -> int:
        return sum(s.pending for s in self.partitions.values())


SinkName = Literal["examples", "dlq"]
