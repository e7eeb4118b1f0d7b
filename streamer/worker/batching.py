"""Records -> micro-batches: validation, dedup and the batch cut, on the polling thread.

Every polled record is validated (:func:`~streamer.worker.examples.parse_example`; a bad one
becomes a dead letter), deduplicated against the polling side's high-water marks, and queued
per partition with the :class:`~streamer.worker.position.Advance` it causes. A :class:`Cut` is
what one optimiser step will train on plus the position it moves the model to; two cut rules
(``worker.batch_cut``):

* ``time``: all owned partitions feed one batch, cut as soon as it holds ``batch_size`` rows,
  or ``max_wait_ms`` after the first record it holds (so a quiet stream still trains and its
  offsets still advance);
* ``offset``: batch ``k`` of partition ``p`` is the records at offsets
  ``[k * batch_size, (k + 1) * batch_size)`` of ``p``; it is cut when its last offset (or a
  later one) arrives. Boundaries do not depend on polling, timing or restarts (a checkpoint is
  always at a boundary), which makes a run reproducible; a partial window waits for more
  records (and is trained at the end of the stream, ``--exit-when-idle``).

Memory stays bounded: at most one batch is pending per partition (``offset``) or in total
(``time``); the training queue bounds the rest (:mod:`streamer.worker.trainer`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streamer.dlq import make_headers
from streamer.events import InvalidEvent
from streamer.store.base import OutRow
from streamer.worker.dedup import HighWaterMarks
from streamer.worker.examples import Example, SpecColumns, parse_example
from streamer.worker.position import Advance


@dataclass
class Cut:
    """One micro-batch before encoding: its examples, dead letters and position advance."""

    examples: list[Example] = field(default_factory=list)
    dead: list[OutRow] = field(default_factory=list)  # DLQ rows (key, value, headers)
    advance: Advance = field(default_factory=Advance)
    dead_reasons: list[str] = field(default_factory=list)
    encoded: Any = None  # (encoder, Batch | None, StreamMeta | None), see encode.encode_cut

    def extend(self, other: Cut) -> None:
        self.examples.extend(other.examples)
        self.dead.extend(other.dead)
        self.dead_reasons.extend(other.dead_reasons)
        self.advance.merge(other.advance)

    def empty(self) -> bool:
        return not self.examples and not self.advance.offsets


def dead_letter(
    cut: Cut, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
    exc: InvalidEvent,
) -> None:  # fmt: skip
    """Stage a DLQ record in ``cut``: original key and bytes, the joiner's reason headers."""
    headers = make_headers(exc.reason, exc.detail, topic, partition, offset)
    cut.dead.append((key or b"", value or b"", headers))
    cut.dead_reasons.append(exc.reason)
    cut.advance.dead_letters += 1


class Batcher:
    """Pending records of the owned partitions and the cut rule (see module docstring)."""

    def __init__(
        self,
        topic: str,
        columns: SpecColumns,
        policy: str,
        batch_size: int,
        mode: str,
        max_wait_s: float,
        max_bytes: int | None = None,
    ) -> None:
        self.topic, self.columns, self.policy = topic, columns, policy
        self.batch_size, self.mode, self.max_wait_s = batch_size, mode, max_wait_s
        self.max_bytes = max_bytes
        self.marks = HighWaterMarks()  # polling side: includes pending, untrained examples
        self._pending: dict[int, Cut] = {}
        self._rows = 0
        self._since: float | None = None  # monotonic time of the oldest pending record

    @property
    def pending_rows(self) -> int:
        return self._rows

    def assign(self, partition: int, trained_marks: dict[int, int]) -> None:
        """Start ``partition`` from the trained marks (its records are re-read from there)."""
        self.drop([partition])
        self.marks.reset(partition, trained_marks)

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget pending records of ``partitions`` (revoked: the next owner re-reads them)."""
        for p in list(partitions):
            cut = self._pending.pop(p, None)
            if cut is not None:
                self._rows -= len(cut.examples)
            self.marks.forget([p])
        if not self._pending:
            self._since = None

    def add(self, partition: int, records: Iterable[Any]) -> list[Cut]:
        """Take polled records of one partition (offset order); returns the cuts they close."""
        out: list[Cut] = []
        bs = self.batch_size
        for r in records:
            if self.mode == "offset":
                cur = self._pending.get(partition)
                if cur is not None and (cur.advance.offsets[partition] - 1) // bs != r.offset // bs:
                    out.append(self._take([partition]))  # r starts a later window
            self._one(partition, r)
            if self.mode == "offset":
                if (r.offset + 1) % bs == 0:
                    out.append(self._take([partition]))
            elif self._rows >= bs:
                out.append(self._take(sorted(self._pending)))
        return out

    def _one(self, partition: int, r: Any) -> None:
        cut = self._pending.get(partition)
        if cut is None:
            cut = self._pending[partition] = Cut()
            if self._since is None:
                self._since = time.monotonic()
        adv = cut.advance
        try:
            ex = parse_example(
                partition, r.offset, r.key, r.value, r.headers or [], self.policy, self.columns,
                self.max_bytes,
            )  # fmt: skip
        except InvalidEvent as exc:
            dead_letter(cut, self.topic, partition, r.offset, r.key, r.value, exc)
            adv.see(partition, r.offset)
            return
        adv.see(partition, r.offset)
        if not self.marks.accept(partition, ex.source, ex.seq):
            adv.duplicates += 1
            return
        adv.mark(partition, ex.source, ex.seq, ex.ts)
        cut.examples.append(ex)
        self._rows += 1

    def _take(self, partitions: list[int]) -> Cut:
        out = Cut()
        for p in partitions:
            cut = self._pending.pop(p, None)
            if cut is not None:
                out.extend(cut)
                self._rows -= len(cut.examples)
        if not self._pending:
            self._since = None
        return out

    def due(self, now: float | None = None) -> list[Cut]:
        """Time mode: the pending batch once ``max_wait_ms`` passed since its first record."""
        if self.mode != "time" or self._since is None:
            return []
        if (now if now is not None else time.monotonic()) - self._since < self.max_wait_s:
            return []
        return [self._take(sorted(self._pending))]

    def flush(self) -> list[Cut]:
        """Everything pending (end of the stream): one cut per partition in offset mode."""
        if self.mode == "offset":
            return [self._take([p]) for p in sorted(self._pending)]
        return [self._take(sorted(self._pending))] if self._pending else []
