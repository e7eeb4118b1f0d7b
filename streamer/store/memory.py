"""In-memory :class:`StateStore`: same contract as the SQL store, for tests and fast runs.

Transactions are atomic through an undo log: every mutation records how to revert it, and an
exception inside the ``with`` block replays the log backwards. Deadlines are indexed by a heap
with lazy deletion (an item is live only while it matches the entry's current deadline).
"""

from __future__ import annotations

import copy
import heapq
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from streamer.store.base import (
    SINKS,
    ChunkRef,
    Entry,
    Fenced,
    Meta,
    Output,
    OutRow,
    Sink,
    StateStore,
    StoreTxn,
)


@dataclass
class _Partition:
    meta: Meta
    entries: dict[str, Entry] = field(default_factory=dict)
    heap: list[tuple[int, str]] = field(default_factory=list)
    outbox: dict[str, dict[int, Output]] = field(default_factory=lambda: {s: {} for s in SINKS})
    sealed_upto: int = -1  # archive rows with seq <= this are sealed
    chunks: dict[int, ChunkRef] = field(default_factory=dict)


class _MemoryTxn(StoreTxn):
    def __init__(self, part: _Partition) -> None:
        self.partition = part.meta.partition
        self._p = part
        self.undo: list[Callable[[], None]] = []

    # -- entries ---------------------------------------------------------------------------
    def get(self, ids: Sequence[str]) -> dict[str, Entry]:
        ents = self._p.entries
        return {i: ents[i] for i in ids if i in ents}

    def due(self, watermark: int, limit: int) -> list[Entry]:
        p = self._p
        out: list[Entry] = []
        seen: set[str] = set()
        while p.heap and p.heap[0][0] < watermark and len(out) < limit:
            deadline, iid = heapq.heappop(p.heap)
            e = p.entries.get(iid)
            if e is not None and e.deadline == deadline and iid not in seen:
                seen.add(iid)
                out.append(e)
        for e in out:  # live items go back: the heap must index every entry
            heapq.heappush(p.heap, (e.deadline, e.impression_id))
        return out

    def expire(self, state: int, watermark: int) -> int:
        p = self._p
        keep: list[tuple[int, str]] = []
        undo: list[tuple[str, Entry | None]] = []
        while p.heap and p.heap[0][0] < watermark:
            deadline, iid = heapq.heappop(p.heap)
            e = p.entries.get(iid)
            if e is None or e.deadline != deadline:
                continue  # stale
            if e.state == state:
                del p.entries[iid]
                undo.append((iid, e))
            else:
                keep.append((deadline, iid))
        for item in keep:
            heapq.heappush(p.heap, item)
        self.undo.append(lambda: self._restore(undo))
        return len(undo)

    def oldest(self, state: int, limit: int) -> list[Entry]:
        cands = (e for e in self._p.entries.values() if e.state == state)
        return heapq.nsmallest(limit, cands, key=lambda e: (e.deadline, e.impression_id))

    def _compact_heap(self) -> None:
        p = self._p
        if len(p.heap) > 2 * len(p.entries) + 1024:
            p.heap = [(e.deadline, e.impression_id) for e in p.entries.values()]
            heapq.heapify(p.heap)

    def put(self, entries: Sequence[Entry]) -> None:
        ents, heap = self._p.entries, self._p.heap
        undo: list[tuple[str, Entry | None]] = []
        for e in entries:
            iid = e.impression_id
            old = ents.get(iid)
            ents[iid] = e
            if old is None or old.deadline != e.deadline:
                heapq.heappush(heap, (e.deadline, iid))
            undo.append((iid, old))
        self.undo.append(lambda: self._restore(undo))

    def delete(self, ids: Sequence[str]) -> None:
        ents = self._p.entries
        undo = [(iid, ents.pop(iid)) for iid in ids if iid in ents]
        self.undo.append(lambda: self._restore(undo))
        self._compact_heap()

    def _restore(self, undo: Sequence[tuple[str, Entry | None]]) -> None:
        """Put back the entries an operation replaced or removed (newest first)."""
        for iid, old in reversed(undo):
            if old is None:
                self._p.entries.pop(iid, None)
            else:
                self._p.entries[iid] = old
                heapq.heappush(self._p.heap, (old.deadline, iid))

    # -- meta and outbox -------------------------------------------------------------------
    def read_meta(self) -> Meta:
        return copy.deepcopy(self._p.meta)

    def write_meta(self, data: dict[str, Any]) -> None:
        old = self._p.meta.data
        self._p.meta.data = copy.deepcopy(data)
        self.undo.append(lambda: setattr(self._p.meta, "data", old))

    def stage(self, sink: Sink, first_seq: int, rows: Sequence[OutRow]) -> None:
        box = self._p.outbox[sink]
        outputs = [Output(first_seq + i, k, v, h) for i, (k, v, h) in enumerate(rows)]
        for o in outputs:
            if o.seq in box:
                raise ValueError(f"outbox {sink}: seq {o.seq} already staged")
            box[o.seq] = o
        seqs = [o.seq for o in outputs]

        def revert() -> None:
            for s in seqs:
                box.pop(s, None)

        self.undo.append(revert)

    def pending(self, sink: Sink, limit: int, after_seq: int = -1) -> list[Output]:
        box = self._p.outbox[sink]
        return [box[s] for s in sorted(s for s in box if s > after_seq)[:limit]]

    def ack(self, sink: Sink, upto_seq: int) -> int:
        if sink == "archive":
            raise ValueError("archive rows are acknowledged per chunk (drop_chunk)")
        box = self._p.outbox[sink]
        gone = {s: box.pop(s) for s in [s for s in box if s <= upto_seq]}
        self.undo.append(lambda: box.update(gone))
        return len(gone)

    def seal(self, min_rows: int, max_rows: int) -> ChunkRef | None:
        p = self._p
        seqs = sorted(s for s in p.outbox["archive"] if s > p.sealed_upto)[:max_rows]
        if not seqs or len(seqs) < min_rows:
            return None
        chunk = ChunkRef(self.partition, seqs[0], seqs[-1])
        old = p.sealed_upto
        p.sealed_upto = seqs[-1]
        p.chunks[chunk.first_seq] = chunk

        def revert() -> None:
            p.sealed_upto = old
            p.chunks.pop(chunk.first_seq, None)

        self.undo.append(revert)
        return chunk

    def chunks(self) -> list[ChunkRef]:
        return [self._p.chunks[k] for k in sorted(self._p.chunks)]

    def chunk_rows(self, chunk: ChunkRef) -> list[Output]:
        box = self._p.outbox["archive"]
        return [box[s] for s in sorted(box) if chunk.first_seq <= s <= chunk.last_seq]

    def drop_chunk(self, chunk: ChunkRef) -> None:
        p = self._p
        if p.chunks.get(chunk.first_seq) != chunk:
            return
        del p.chunks[chunk.first_seq]
        box = p.outbox["archive"]
        gone = {s: box.pop(s) for s in [s for s in box if chunk.first_seq <= s <= chunk.last_seq]}

        def revert() -> None:
            p.chunks[chunk.first_seq] = chunk
            box.update(gone)

        self.undo.append(revert)


class MemoryStore(StateStore):
    """Process-local store (``memory://``): nothing survives the process, fencing still works."""

    def __init__(self) -> None:
        self._parts: dict[int, _Partition] = {}

    def _part(self, partition: int) -> _Partition:
        if partition not in self._parts:
            self._parts[partition] = _Partition(meta=Meta(partition=partition))
        return self._parts[partition]

    def claim(self, partition: int, owner: str) -> Meta:
        part = self._part(partition)
        part.meta.epoch += 1
        part.meta.owner = owner
        return copy.deepcopy(part.meta)

    @contextmanager
    def transaction(self, partition: int, epoch: int, durable: bool = False) -> Iterator[StoreTxn]:
        part = self._part(partition)
        if part.meta.epoch != epoch:
            raise Fenced(
                f"partition {partition}: epoch {epoch} superseded by {part.meta.epoch} "
                f"(owner {part.meta.owner!r})"
            )
        txn = _MemoryTxn(part)
        try:
            yield txn
        except BaseException:
            for step in reversed(txn.undo):
                step()
            raise

    def partitions(self) -> list[int]:
        return sorted(self._parts)
