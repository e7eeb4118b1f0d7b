"""Where the model stands in the stream: offsets, dedup marks, counters, data range.

:class:`StreamPosition` is what a checkpoint records next to the weights: for each
examples-topic partition the next offset to read and the lanes' high-water marks
(:mod:`streamer.worker.dedup`), the examples-trained counters per task and the event-time range
trained on. It advances only when a micro-batch has been trained (:class:`Advance`, built by
the batcher together with the batch), so offsets, marks and weights in one checkpoint always
describe the same set of examples. A restarted worker seeks to ``offsets`` and keeps
``marks``; every partition is independent (several workers may own disjoint subsets).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamer.worker.dedup import HighWaterMarks

COUNTERS = ("examples", "ctr", "cvr", "duplicates", "dead_letters", "batches", "steps")


@dataclass
class Advance:
    """What one micro-batch moves: next offsets, raised marks, skipped records, time range."""

    offsets: dict[int, int] = field(default_factory=dict)  # partition -> next offset
    marks: dict[int, dict[int, int]] = field(default_factory=dict)  # partition -> {src: seq}
    duplicates: int = 0
    dead_letters: int = 0
    first_ts: int | None = None
    last_ts: int | None = None

    def see(self, partition: int, offset: int) -> None:
        if offset + 1 > self.offsets.get(partition, -1):
            self.offsets[partition] = offset + 1

    def mark(self, partition: int, src: int, seq: int, ts: int) -> None:
        lanes = self.marks.setdefault(partition, {})
        lanes[src] = max(seq, lanes.get(src, -1))
        self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)

    def merge(self, other: Advance) -> None:
        for p, off in other.offsets.items():
            self.offsets[p] = max(off, self.offsets.get(p, -1))
        for p, lanes in other.marks.items():
            mine = self.marks.setdefault(p, {})
            for src, seq in lanes.items():
                mine[src] = max(seq, mine.get(src, -1))
        self.duplicates += other.duplicates
        self.dead_letters += other.dead_letters
        for ts in (other.first_ts, other.last_ts):
            if ts is not None:
                self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
                self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)

    def drop(self, partitions: set[int]) -> None:
        for p in partitions:
            self.offsets.pop(p, None)
            self.marks.pop(p, None)


@dataclass
class StreamPosition:
    """The trained position of one model lineage on ``topic`` (see module docstring)."""

    topic: str
    offsets: dict[int, int] = field(default_factory=dict)
    marks: HighWaterMarks = field(default_factory=HighWaterMarks)
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    first_ts: int | None = None
    last_ts: int | None = None

    def advance(self, adv: Advance, trained: Mapping[str, int]) -> None:
        """Apply a trained batch: its :class:`Advance` and its per-task trained rows."""
        for p, off in adv.offsets.items():
            self.offsets[p] = max(off, self.offsets.get(p, 0))
        for p, lanes in adv.marks.items():
            self.marks.raise_to(p, lanes)
        self.counters["duplicates"] += adv.duplicates
        self.counters["dead_letters"] += adv.dead_letters
        for k, n in trained.items():
            self.counters[k] = self.counters.get(k, 0) + int(n)
        if adv.first_ts is not None:
            self.first_ts = (
                adv.first_ts if self.first_ts is None else min(self.first_ts, adv.first_ts)
            )
        if adv.last_ts is not None:
            self.last_ts = adv.last_ts if self.last_ts is None else max(self.last_ts, adv.last_ts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "offsets": {str(p): o for p, o in sorted(self.offsets.items())},
            "marks": self.marks.to_dict(),
            "counters": dict(self.counters),
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamPosition:
        counters = dict.fromkeys(COUNTERS, 0) | {k: int(v) for k, v in data["counters"].items()}
        return cls(
            topic=str(data["topic"]),
            offsets={int(p): int(o) for p, o in data["offsets"].items()},
            marks=HighWaterMarks(
                {int(p): {int(s): int(q) for s, q in la.items()} for p, la in data["marks"].items()}
            ),
            counters=counters,
            first_ts=data.get("first_ts"),
            last_ts=data.get("last_ts"),
        )
