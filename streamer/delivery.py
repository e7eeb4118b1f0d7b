"""Step 2 of the commit order: deliver a partition's outbox, then acknowledge it.

Examples and DLQ records are produced and flushed before ``engine.ack``; archive rows are
sealed into a chunk, written atomically under a name derived from the chunk, then
``engine.ack_archive``-ed. A crash between delivery and ack re-delivers the same outputs
(same keys, same file names), so Kafka sinks are at-least-once and the archive exactly-once.
The order of the three steps itself lives in :mod:`streamer.daemon`.

Every example carries its **origin** in three headers (:func:`origin_headers`): the join
partition ``p`` that produced it, its outbox seq in ``p`` and the label policy. A re-delivery
after a crash repeats the same (partition, seq), so a consumer deduplicates with one
high-water mark per (examples-topic partition, join partition): bounded state, no key set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lt4rec.config import TopicsConfig
from streamer.archive import ArchiveWriter
from streamer.archive.complete import write_marker
from streamer.joiner import ArchiveChunk, JoinEngine
from streamer.kafka.producer import ProducerSink
from streamer.metrics import JoinerMetrics
from streamer.store.base import OutRow

DRAIN_BATCH = 5000  # outbox outputs per produce + ack round
ORIGIN_PARTITION = "lt4rec.partition"  # join partition that staged the example (decimal)
ORIGIN_SEQ = "lt4rec.seq"  # its outbox seq in that partition (decimal, strictly increasing)
ORIGIN_POLICY = "lt4rec.policy"  # joiner.policy the example was emitted under


def origin_headers(p: int, seq: int, policy: bytes) -> list[tuple[str, bytes]]:
    """The origin headers of the example staged as ``seq`` in join partition ``p``."""
    return [(ORIGIN_PARTITION, b"%d" % p), (ORIGIN_SEQ, b"%d" % seq), (ORIGIN_POLICY, policy)]


@dataclass
class RunSummary:
    records: int = 0
    batches: int = 0
    seconds: float = 0.0
    examples: int = 0
    dlq: int = 0
    archive_rows: int = 0
    busy_seconds: float = 0.0  # first polled record -> end of the last batch's drain


class Delivery:
    """Outbox -> Kafka sinks and archive files for the partitions one daemon owns."""

    def __init__(
        self,
        engine: JoinEngine,
        sink: ProducerSink,
        writer: ArchiveWriter,
        archive_dir: Path,
        topics: TopicsConfig,
        metrics: JoinerMetrics,
        summary: RunSummary,
        policy: str,
    ) -> None:
        self.policy = policy.encode()
        self.engine = engine
        self.sink = sink
        self.writer = writer
        self.archive_dir = archive_dir
        self.topics = topics
        self.metrics = metrics
        self.summary = summary

    def drain(self, p: int, seal_all: bool = False, recover: bool = False) -> None:
        """Produce + ack pending examples and DLQ records, then write due archive chunks.

        The outbox sizes of the last commit (``engine.stats``) skip empty sinks, so a batch
        costs no extra store round trips for sinks with nothing to send.
        """
        outbox = self.outbox(p)
        for sink, topic in (("examples", self.topics.examples), ("dlq", self.topics.dlq)):
            if not recover and outbox.get(sink, 0) <= 0:
                continue
            while True:
                outs = self.engine.pending(p, sink, DRAIN_BATCH)  # type: ignore[arg-type]
                if not outs:
                    break
                if sink == "examples":
                    seqs = [(o.seq, (o.key, o.value, o.headers)) for o in outs]
                    self.sink.send_rows(topic, self._with_origin(p, seqs))
                else:
                    self.sink.send(topic, outs)
                self.engine.ack(p, sink, outs[-1].seq)  # type: ignore[arg-type]
                if sink == "examples":
                    self.metrics.count_examples([_example_kind(o.key, o.headers) for o in outs])
                    self.summary.examples += len(outs)
                else:
                    self.metrics.count_dlq([_reason(o.headers) for o in outs])
                    self.summary.dlq += len(outs)
                if len(outs) < DRAIN_BATCH:
                    break
        if recover:  # sealed before a crash: rewrite under the same names
            for chunk in self.engine.sealed_chunks(p):
                self.write_chunk(chunk)
        if seal_all:
            self.seal(p, 1)

    def send_staged(self, p: int, staged: dict[str, list[tuple[int, list[OutRow]]]]) -> None:
        """Step 2 from the rows ``process`` staged (the outbox had nothing older pending)."""
        for sink, topic in (("examples", self.topics.examples), ("dlq", self.topics.dlq)):
            segments = staged.get(sink)
            if not segments:
                continue
            if sink == "examples":
                seqs = [(first + i, r) for first, seg in segments for i, r in enumerate(seg)]
                rows = self._with_origin(p, seqs)
            else:
                rows = [row for _, seg in segments for row in seg]
            self.sink.send_rows(topic, rows)
            first, last_seg = segments[-1]
            self.engine.ack(p, sink, first + len(last_seg) - 1)  # type: ignore[arg-type]
            if sink == "examples":
                self.metrics.count_examples([_example_kind(k, h) for k, _, h in rows])
                self.summary.examples += len(rows)
            else:
                self.metrics.count_dlq([_reason(h) for _, _, h in rows])
                self.summary.dlq += len(rows)

    def _with_origin(self, p: int, rows: Sequence[tuple[int, OutRow]]) -> list[OutRow]:
        """``(seq, row)`` pairs of partition ``p`` as rows with their origin headers."""
        pol = self.policy
        return [(k, v, [*h, *origin_headers(p, seq, pol)]) for seq, (k, v, h) in rows]

    def outbox(self, p: int) -> dict[str, int]:
        part = self.engine.stats().partitions.get(p)
        return dict(part.outbox) if part is not None else {}

    def seal(self, p: int, min_rows: int) -> int:
        """Seal, write and ack archive chunks while ``min_rows`` rows wait; returns how many.

        When nothing is left to archive, the partition's completeness marker moves to its
        watermark (:mod:`streamer.archive.complete`).
        """
        n = 0
        while (chunk := self.engine.seal_archive(p, min_rows)) is not None:
            self.write_chunk(chunk)
            n += 1
        self.mark_complete(p)
        return n

    def mark_complete(self, p: int) -> None:
        """Move ``p``'s completeness marker to its watermark if no archive row is pending."""
        part = self.engine.stats().partitions.get(p)
        if part is not None and part.watermark is not None and not part.outbox.get("archive"):
            write_marker(self.archive_dir, p, part.watermark)

    def write_chunk(self, chunk: ArchiveChunk) -> None:
        self.writer.write(chunk, self.archive_dir)
        self.engine.ack_archive(chunk)
        self.metrics.count_archive(len(chunk.rows))
        self.summary.archive_rows += len(chunk.rows)


def _example_kind(key: bytes, headers: list[tuple[str, bytes]]) -> str:
    """The example's kind: its ``kind`` header, else the key's ``impression_id:kind``."""
    for k, v in headers:
        if k == "kind":
            return v.decode("utf-8", "replace")
    parts = key.decode("utf-8", "replace").split(":")
    return parts[1] if len(parts) > 1 else "unknown"


def _reason(headers: list[tuple[str, bytes]]) -> str:
    for k, v in headers:
        if k == "reason":
            return v.decode("utf-8", "replace")
    return "unknown"
