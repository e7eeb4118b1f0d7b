"""Exactly-once effect on an at-least-once topic: one high-water mark per lane.

A *lane* is (examples-topic partition, join partition). The joiner stamps every example with
its origin (join partition ``src``, outbox ``seq``); within a lane seqs only increase, except
that a joiner that crashed between producing and acknowledging its outbox produces the same
``(src, seq)`` again (docs/streamer.md). So an example is new iff its seq is above the lane's
mark, and the whole dedup state is one integer per lane: bounded by partitions, not by keys.

The marks of trained examples are stored in every checkpoint together with the consumed
offsets (:mod:`streamer.worker.position`), so a restarted worker skips exactly the examples
its model already learned from, whichever copy of them it reads first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class HighWaterMarks:
    """``{partition: {src: highest seq accepted}}`` with the accept rule above."""

    def __init__(self, marks: Mapping[int, Mapping[int, int]] | None = None) -> None:
        self.marks: dict[int, dict[int, int]] = {
            int(p): {int(s): int(q) for s, q in lanes.items()} for p, lanes in (marks or {}).items()
        }

    def accept(self, partition: int, src: int, seq: int) -> bool:
        """True (and raise the mark) for a new example, False for a repeat."""
        lanes = self.marks.get(partition)
        if lanes is None:
            lanes = self.marks[partition] = {}
        if seq <= lanes.get(src, -1):
            return False
        lanes[src] = seq
        return True

    def raise_to(self, partition: int, lanes: Mapping[int, int]) -> None:
        """Merge marks (keeping the higher one per lane)."""
        mine = self.marks.setdefault(partition, {})
        for src, seq in lanes.items():
            if seq > mine.get(src, -1):
                mine[src] = seq

    def of(self, partition: int) -> dict[int, int]:
        return dict(self.marks.get(partition, {}))

    def reset(self, partition: int, lanes: Mapping[int, int]) -> None:
        """Replace one partition's lanes (on assignment: the trained marks)."""
        self.marks[partition] = dict(lanes)

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.marks.pop(p, None)

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {str(p): {str(s): q for s, q in sorted(la.items())} for p, la in self.marks.items()}
