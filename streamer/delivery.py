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

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lt4rec.config import TopicsConfig
from streamer.archive import ArchiveWriter
from streamer.archive.complete import write_marker
from streamer.dlq import dlq_payload, header, make_headers
from streamer.joiner import ArchiveChunk, JoinEngine
from streamer.joiner.types import SinkName
from streamer.kafka.producer import Failure, ProducerSink
from streamer.metrics import JoinerMetrics
from streamer.store.base import OutRow

log = logging.getLogger(__name__)

DRAIN_BATCH = 5000  # outbox outputs per produce + ack round
ORIGIN_PARTITION = "lt4rec.partition"  # join partition that staged the example (decimal)
ORIGIN_SEQ = "lt4rec.seq"  # its outbox seq in that partition (decimal, strictly increasing)
ORIGIN_POLICY = "lt4rec.policy"  # joiner.policy the example was emitted under
KAFKA_SINKS: tuple[SinkName, ...] = ("examples", "dlq")


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
        max_bytes: int = 1_000_000,
        flush_rows: int = 50_000,
        flush_seconds: float = 30.0,
    ) -> None:
        self.policy = policy.encode()
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds  # archive.*
        self._last_seal: dict[int, float] = {}
        self.max_bytes = max_bytes  # kafka.max_message_bytes (diverted records are cut to it)
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
        costs no extra store round trips for sinks with nothing to send. Raises
        :class:`~streamer.kafka.producer.SinkError` when the broker cannot take them for now
        (nothing is acknowledged: a later ``drain`` retries).
        """
        outbox = self.outbox(p)
        for sink in KAFKA_SINKS:
            if not recover and outbox.get(sink, 0) <= 0:
                continue
            while True:
                outs = self.engine.pending(p, sink, DRAIN_BATCH)
                if not outs:
                    break
                rows = [(o.seq, (o.key, o.value, o.headers)) for o in outs]
                self._deliver(p, sink, rows)
                if len(outs) < DRAIN_BATCH:
                    break
        if recover:  # sealed before a crash: rewrite under the same names
            for chunk in self.engine.sealed_chunks(p):
                self.write_chunk(chunk)
        if seal_all:
            self.seal(p, 1)

    def send_staged(self, p: int, staged: dict[str, list[tuple[int, list[OutRow]]]]) -> None:
        """Step 2 from the rows ``process`` staged (the outbox had nothing older pending)."""
        for sink in KAFKA_SINKS:
            segments = staged.get(sink)
            if segments:
                rows = [(first + i, r) for first, seg in segments for i, r in enumerate(seg)]
                self._deliver(p, sink, rows)

    def _deliver(self, p: int, sink: SinkName, rows: list[tuple[int, OutRow]]) -> None:
        """Produce ``(seq, row)`` outputs of one sink, divert what the broker refuses for
        good (:meth:`_divert`), then acknowledge up to the last seq."""
        if sink == "examples":
            out = self._with_origin(p, rows)
            failed = self.sink.send_rows(self.topics.examples, out)
        else:
            out = [r for _, r in rows]
            failed = self.sink.send_rows(self.topics.dlq, out)
        if failed:
            self._divert(p, sink, rows, out, failed)
        self.engine.ack(p, sink, rows[-1][0])
        gone = {i for i, _ in failed}
        sent = [r for i, r in enumerate(out) if i not in gone]
        if sink == "examples":
            self.metrics.count_examples([_example_kind(k, h) for k, _, h in sent])
            self.summary.examples += len(sent)
        else:
            self.metrics.count_dlq([header(h, "reason", "unknown") for _, _, h in sent])
            self.summary.dlq += len(sent)

    def _divert(
        self,
        p: int,
        sink: str,
        rows: list[tuple[int, OutRow]],
        out: list[OutRow],
        failed: list[Failure],
    ) -> None:
        """Records the broker refused for good (e.g. larger than the topic allows) must not
        wedge the partition: an example goes to the DLQ as ``undeliverable`` (the example is
        its payload, with its origin headers); a DLQ record the DLQ topic refuses is re-sent
        without its payload; what is refused even so is logged, counted and dropped."""
        retry: list[OutRow] = []
        for i, exc in failed:
            key, value, _ = out[i]
            why = f"{self.topics.examples if sink == 'examples' else self.topics.dlq}: {exc}"
            log.error("partition %d: %s record seq %d refused by the broker: %s",
                      p, sink, rows[i][0], why)  # fmt: skip
            if sink == "examples":
                hdrs = make_headers("undeliverable", why, self.topics.examples, p, rows[i][0])
                k, v, extra = dlq_payload(key, value, self.max_bytes)
                retry.append((k, v, [*hdrs, *extra, *origin_headers(p, rows[i][0], self.policy)]))
            else:
                retry.append(_stripped(out[i]))
        refused = self.sink.send_rows(self.topics.dlq, retry)
        if sink == "examples" and refused:  # the DLQ topic takes less: without the payload
            again = self.sink.send_rows(self.topics.dlq, [_stripped(retry[i]) for i, _ in refused])
            refused = [(refused[j][0], exc) for j, exc in again]
        for _, exc in refused:
            log.error("partition %d: dropped an undeliverable %s record: %s", p, sink, exc)
        self.metrics.count_undeliverable(sink, len(failed), len(refused))
        self.metrics.count_dlq(
            [header(h, "reason", "unknown") for _, _, h in retry][: len(retry) - len(refused)]
        )
        self.summary.dlq += len(retry) - len(refused)

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

    def claimed(self, p: int) -> None:
        """``p`` was (re)claimed: its archive flush timer starts now."""
        self._last_seal[p] = time.monotonic()

    def seal_due(self, p: int) -> None:
        """Seal when ``flush_rows`` archive rows wait, or ``flush_seconds`` passed with any;
        with none, the completeness marker still follows the watermark every interval."""
        now = time.monotonic()
        rows = self.outbox(p).get("archive", 0)
        timed_out = now - self._last_seal.get(p, now) >= self.flush_seconds
        if rows <= 0:
            if timed_out:
                self.mark_complete(p)
                self._last_seal[p] = now
        elif rows >= self.flush_rows or timed_out:
            self.seal(p, 1 if timed_out else self.flush_rows)
            self._last_seal[p] = now

    def mark_complete(self, p: int, ended: bool = False) -> None:
        """Move ``p``'s completeness marker to its watermark if no archive row is pending;
        ``ended``: after ``--flush-at-end`` closed every window, the stream is over and every
        row of ``p`` that will ever exist is archived (:mod:`streamer.archive.complete`)."""
        part = self.engine.stats().partitions.get(p)
        if part is not None and part.watermark is not None and not part.outbox.get("archive"):
            write_marker(self.archive_dir, p, part.watermark, ended=ended)

    def write_chunk(self, chunk: ArchiveChunk) -> None:
        before = self.writer.coerced_nulls
        self.writer.write(chunk, self.archive_dir)
        self.engine.ack_archive(chunk)
        self.metrics.count_archive(len(chunk.rows), self.writer.coerced_nulls - before)
        self.summary.archive_rows += len(chunk.rows)


def _stripped(row: OutRow) -> OutRow:
    """A DLQ row without key and value: its headers (and an earlier truncation's checksum,
    else one of the bytes it drops) still say what and where the message was."""
    key, value, headers = row
    cut = [] if header(headers, "truncated") else dlq_payload(key, value, 0)[2]
    return b"", b"", [*headers, *cut]


def _example_kind(key: bytes, headers: list[tuple[str, bytes]]) -> str:
    """The example's kind: its ``kind`` header, else the key's ``impression_id:kind``."""
    for k, v in headers:
        if k == "kind":
            return v.decode("utf-8", "replace")
    parts = key.decode("utf-8", "replace").split(":")
    return parts[1] if len(parts) > 1 else "unknown"
