"""Which examples a model version has already learned from: what a catch-up may skip.

A hot-swapped model must train every example of the stream that its own data does not
cover, exactly once, before it takes over (:mod:`streamer.worker.catchup`). Coverage by kind:

* ``repruned``: the archive rows of its train split — impressions with ``ts < train_end``
  whose label was final at the archive cut (``label_ts <= label_cut``); both are stored with
  the version (``train_end_ts``, ``label_cutoff_ts``, :mod:`streamer.reprune.window`). An
  example outside that set (newer impression, or a label finalised after the cut) is not
  covered. The catch-up reads the examples topic from its beginning.
* ``offline`` (``lt4rec fit``): impressions up to the end of its training data
  (``data_last_ts`` of the registry row, labels final); without a recorded range, nothing.
* ``online``: everything before its recorded stream position (offsets and dedup marks of
  each partition): the catch-up starts there, so a roll back to an online version continues
  its own lineage exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from checkpoints import Checkpoint, VersionInfo
from streamer.worker.dedup import HighWaterMarks
from streamer.worker.examples import Example
from streamer.worker.position import StreamPosition

_NEVER = 2**62  # a label cut no label time reaches


@dataclass(frozen=True)
class Coverage:
    """The examples ``version`` learned from (see module docstring)."""

    version: int
    kind: str
    train_end: int | None = None  # event time: impressions before it may be covered...
    label_cut: int | None = None  # ...when their label was final by then
    offsets: dict[int, int] = field(default_factory=dict)  # online: next offset per partition
    marks: HighWaterMarks = field(default_factory=HighWaterMarks)

    def covers(self, ex: Example) -> bool:
        """Whether the version's data already holds ``ex`` (the catch-up skips it)."""
        if self.train_end is None or self.label_cut is None:
            return False  # online: the start offsets already exclude what it saw
        return ex.ts < self.train_end and ex.label_ts <= self.label_cut

    def start(self, partition: int) -> tuple[int, dict[int, int]]:
        """Offset and dedup marks the catch-up reads ``partition`` from."""
        return self.offsets.get(partition, 0), self.marks.of(partition)

    @classmethod
    def of(cls, info: VersionInfo, ckpt: Checkpoint, topic: str) -> Coverage:
        if info.kind == "online":
            stream = ckpt.extra.get("stream")
            if stream and stream.get("topic") == topic:
                pos = StreamPosition.from_dict(stream)
                return cls(info.version, info.kind, offsets=dict(pos.offsets), marks=pos.marks)
            return cls(info.version, info.kind)  # another topic: nothing covered here
        m = info.metrics
        if "train_end_ts" in m and "label_cutoff_ts" in m:
            return cls(info.version, info.kind, int(m["train_end_ts"]), int(m["label_cutoff_ts"]))
        if info.data_last_ts is not None:
            return cls(info.version, info.kind, int(info.data_last_ts) + 1, _NEVER)
        return cls(info.version, info.kind)
