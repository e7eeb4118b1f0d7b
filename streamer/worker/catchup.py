"""Catch-up: train a new model on every example its data does not cover, up to a position.

A :class:`CatchUp` reads the examples topic with a consumer of its own (assigned partitions,
no group, no commits) from where the new version's coverage starts
(:meth:`~streamer.worker.coverage.Coverage.start`: the beginning for a re-pruned model, its
own position for an online one), validates and deduplicates with the same code and the same
high-water-mark rule as the live path (:class:`~streamer.worker.batching.Batcher`), drops the
examples the version already covers, and trains the rest on the new
:class:`~streamer.worker.holder.ModelHolder`, in offset order, never past the target offsets:
:meth:`advance_to` may be called again with a later target (the live worker keeps training the
old model meanwhile), and the last call runs at the swap's batch boundary, so the new model
has then trained exactly the uncovered examples up to the live position — each once.
Records the live path dead-lettered are skipped here (not dead-lettered twice).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from lt4rec.config import AppConfig
from streamer.worker.batching import Batcher, Cut
from streamer.worker.coverage import Coverage
from streamer.worker.encode import encode_cut
from streamer.worker.holder import ModelHolder, WorkerError

log = logging.getLogger(__name__)


@dataclass
class CatchUpStats:
    read: int = 0  # records read
    trained: int = 0  # uncovered examples trained
    covered: int = 0  # skipped: in the version's data
    duplicates: int = 0
    dead: int = 0  # invalid records (dead-lettered by the live path)
    seconds: float = 0.0


class CatchUp:
    """Trains ``holder`` on the uncovered examples of ``partitions`` (module docstring)."""

    def __init__(
        self, cfg: AppConfig, holder: ModelHolder, coverage: Coverage, partitions: list[int]
    ) -> None:
        self.cfg, self.holder, self.coverage = cfg, holder, coverage
        self.topic = cfg.topics.examples
        w = cfg.worker
        self.batcher = Batcher(
            self.topic, holder.encoder.columns, cfg.joiner.policy, w.batch_size, "time",
            float("inf"), cfg.kafka.max_message_bytes,
        )  # fmt: skip
        self.stats = CatchUpStats()
        self.pos: dict[int, int] = {}
        self._held: dict[int, list[Any]] = {}  # records at or past the current target
        self.consumer = KafkaConsumer(
            bootstrap_servers=cfg.kafka.bootstrap,
            client_id=f"{cfg.kafka.client_id}-catchup",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=cfg.kafka.max_poll_records,
            max_partition_fetch_bytes=max(1_048_576, cfg.kafka.max_message_bytes + 65_536),
            check_crcs=cfg.kafka.check_crcs,
        )
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self.consumer.assign(tps)
        for tp in tps:
            offset, marks = coverage.start(tp.partition)
            self.consumer.seek(tp, offset)
            self.pos[tp.partition] = offset
            self.batcher.assign(tp.partition, marks)

    def close(self) -> None:
        self.consumer.close()

    def gap(self, target: dict[int, int]) -> int:
        """Records left between the catch-up and ``target`` (all partitions)."""
        return sum(max(0, off - self.pos.get(p, 0)) for p, off in target.items())

    def advance_to(self, target: dict[int, int], timeout_s: float = 600.0) -> int:
        """Train every uncovered example before ``target`` (next offsets); returns how many."""
        t0 = time.perf_counter()
        before = self.stats.trained
        unknown = sorted(set(target) - set(self.pos))
        if unknown:
            raise WorkerError(f"catch-up: partitions {unknown} were not assigned to it")
        for p in sorted(self._held):  # records polled earlier, beyond the previous target
            held, self._held[p] = self._held[p], []
            self._feed(p, held, target[p])
        deadline = time.monotonic() + timeout_s
        while any(self.pos[p] < off for p, off in target.items()):
            if time.monotonic() > deadline:
                raise WorkerError(f"catch-up did not reach {target} within {timeout_s:.0f}s")
            for tp, recs in self.consumer.poll(timeout_ms=200).items():
                self._feed(tp.partition, recs, target.get(tp.partition, 0))
        for cut in self.batcher.flush():
            self._train(cut)
        self.stats.seconds += time.perf_counter() - t0
        return self.stats.trained - before

    def _feed(self, p: int, records: list[Any], stop: int) -> None:
        take = [r for r in records if r.offset < stop]
        rest = [r for r in records if r.offset >= stop]
        if rest:
            self._held.setdefault(p, []).extend(rest)
        if not take:
            return
        self.stats.read += len(take)
        self.pos[p] = max(self.pos[p], take[-1].offset + 1)
        for cut in self.batcher.add(p, take):
            self._train(cut)

    def _train(self, cut: Cut) -> None:
        self.stats.duplicates += cut.advance.duplicates
        self.stats.dead += len(cut.dead)
        keep = [e for e in cut.examples if not self.coverage.covers(e)]
        self.stats.covered += len(cut.examples) - len(keep)
        cut.examples, cut.dead = keep, []
        if not keep:
            return
        encode_cut(cut, self.holder.encoder, self.topic)
        _, batch, meta = cut.encoded
        if batch is None or meta is None:
            return
        self.holder.step(batch, meta)
        self.stats.trained += len(cut.examples)
