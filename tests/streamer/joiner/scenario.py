"""Random event streams with a ground truth, and a driver that cuts, interleaves and crashes.

``make_stream`` draws impressions with at most one distinct click and one distinct conversion
each (plus exact duplicates, orphan labels and conversions without a click). Every topic is
delivered in *arrival* order, ``arrival = ts + U(0, lateness)``, so every event is within the
allowed lateness of its topic. ``truth`` computes the design doc's window rule directly.
``Driver`` feeds the stream to engines in random batches over a random interleaving of the
three topics, drains the outboxes at random times and "crashes" at random points: the engine
is dropped (sometimes mid-transaction, sometimes between a seal or a drain and its ack) and a
new one is built on the same store, resuming from the offsets ``claim`` returns (sometimes
rewound a little, like a consumer whose Kafka commits lag the store).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from lt4rec.config import JoinerConfig
from streamer.events import Click, Conversion, Event, Impression
from streamer.joiner import JoinEngine, SourceRecord
from streamer.store import StateStore
from tests.streamer.joiner.joinkit import T0, TOPIC_OF, Feed, S, new_engine

KINDS = ("impression", "click", "conversion")


@dataclass
class Stream:
    topics: dict[str, list[SourceRecord]]  # per kind, in arrival (= offset) order
    impressions: dict[str, Impression]
    clicks: dict[str, list[int]] = field(default_factory=dict)
    conversions: dict[str, list[int]] = field(default_factory=dict)


def make_stream(rng: random.Random, n: int, cfg: JoinerConfig, partition: int) -> Stream:
    cw, aw = cfg.click_window_s * S, cfg.attribution_window_s * S
    events: list[Event] = []
    for i in range(n):
        iid = f"i{i}"
        t = T0 + rng.randrange(0, 900 * S)
        feats = {"n": rng.randrange(5), "c": rng.choice("xyz"), "d": rng.random(), "m": ["a"]}
        events.append(Impression(iid, t, f"u{i % 7}", f"it{i % 5}", feats))
        r = rng.random()
        if r < 0.55:
            ct = t + rng.randrange(-2 * S, cw + 20 * S)
            events.append(Click(iid, ct))
            if rng.random() < 0.5:
                events.append(Conversion(iid, ct + rng.randrange(-2 * S, aw + 60 * S)))
        elif r < 0.65:
            events.append(Conversion(iid, t + rng.randrange(0, cw)))  # no click: orphan
    for j in range(rng.randrange(3)):  # labels of impressions that never come
        events.append(Click(f"ghost{j}", T0 + rng.randrange(0, 900 * S)))
    events += [e for e in events if rng.random() < 0.15]  # exact duplicates
    lateness = cfg.allowed_lateness_s * S
    feed = Feed(partition)
    by_kind: dict[str, list[tuple[float, Event]]] = {k: [] for k in KINDS}
    for e in events:
        by_kind[e.kind].append((e.ts + rng.uniform(0, lateness), e))
    topics = {k: [feed.record(e) for _, e in sorted(v, key=lambda x: x[0])]
              for k, v in by_kind.items()}  # fmt: skip
    s = Stream(topics, {e.impression_id: e for e in events if isinstance(e, Impression)})
    for e in events:
        if isinstance(e, Click):
            s.clicks.setdefault(e.impression_id, []).append(e.ts)
        elif isinstance(e, Conversion):
            s.conversions.setdefault(e.impression_id, []).append(e.ts)
    return s


def truth(s: Stream, cfg: JoinerConfig) -> dict[str, tuple[int, int, int | None, int | None, int]]:
    """Per impression: (click, conversion, click_ts, conversion_ts, label_ts)."""
    cw, aw = cfg.click_window_s * S, cfg.attribution_window_s * S
    out = {}
    for iid, imp in s.impressions.items():
        clicks = [c for c in s.clicks.get(iid, []) if 0 <= c - imp.ts <= cw]
        ck = min(clicks) if clicks else None
        convs = [v for v in s.conversions.get(iid, []) if ck is not None and 0 <= v - ck <= aw]
        cv = min(convs) if convs else None
        label = cv if cv is not None else imp.ts + cw if ck is None else ck + aw
        out[iid] = (int(ck is not None), int(cv is not None), ck, cv, label)
    return out


def row_label(r: dict[str, Any]) -> tuple[int, int, int | None, int | None, int]:
    return (r["click"], r["conversion"], r["click_ts"], r["conversion_ts"], r["label_ts"])


class Crash(Exception):
    """A simulated process death."""


class CrashAtCommit:
    """Store proxy whose transactions die just before writing the meta (after all else)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:  # claim, describe, transient...: the store's
        return getattr(self.store, name)

    @contextmanager
    def transaction(self, partition: int, epoch: int, durable: bool = False) -> Iterator[Any]:
        with self.store.transaction(partition, epoch, durable) as txn:

            def boom(data: dict[str, Any]) -> None:
                raise Crash

            txn.write_meta = boom  # type: ignore[method-assign]
            yield txn


@dataclass
class Driver:
    """Feeds a stream to crashing engines; collects what the sinks would have delivered."""

    open_store: Callable[[], StateStore]
    cfg: JoinerConfig
    partition: int
    rng: random.Random
    crash_rate: float = 0.0
    examples: dict[str, bytes] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    crashes: int = 0
    counters: dict[str, int] = field(default_factory=dict)

    def _engine(self) -> tuple[JoinEngine, dict[str, int]]:
        eng = new_engine(self.open_store(), self.cfg, owner=f"o{self.crashes}")
        offsets = eng.claim(self.partition)
        for chunk in eng.sealed_chunks(self.partition):  # rewrite what a crash left sealed
            self.rows += chunk.rows
            eng.ack_archive(chunk)
        return eng, offsets

    def _drain(self, eng: JoinEngine) -> bool:
        """Deliver examples / archive rows; ``True``: crashed before an ack."""
        p = self.partition
        outs = eng.pending(p, "examples", 10_000)
        for o in outs:
            key = o.key.decode()
            assert self.examples.setdefault(key, o.value) == o.value, f"{key} changed value"
        if self.rng.random() < self.crash_rate:
            return True
        if outs:
            eng.ack(p, "examples", outs[-1].seq)
        chunk = eng.seal_archive(p)
        if chunk is not None:
            if self.rng.random() < self.crash_rate:
                return True  # the file may or may not exist: the chunk is rewritten on restart
            self.rows += chunk.rows
            eng.ack_archive(chunk)
        return False

    def _crash_in_txn(self, eng: JoinEngine, batch: list[SourceRecord]) -> None:
        """Fail one ``process`` late: a mismatched record, or at the very last write."""
        if self.rng.random() < 0.5:
            ev = batch[0].event
            kind = "impression" if isinstance(ev, Click) else "click"
            bad = SourceRecord(kind, "x", self.partition, 10**9, None, b"", ev)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="is not a"):
                eng.process(self.partition, [*batch, bad])
            return
        eng.store = CrashAtCommit(eng.store)
        with pytest.raises(Crash):
            eng.process(self.partition, batch)

    def run(self, s: Stream) -> None:
        eng, offsets = self._engine()
        while True:
            queues = {k: [r for r in s.topics[k] if r.offset >= offsets.get(TOPIC_OF[k], 0)
                          - self.rng.choice((0, 0, 1, 3))] for k in KINDS}  # fmt: skip
            merged = []
            while any(queues.values()):
                k = self.rng.choice([k for k in KINDS if queues[k]])
                merged.append(queues[k].pop(0))
            crashed = False
            pos = 0
            while pos < len(merged):
                step = self.rng.randint(1, 12)
                batch, pos = merged[pos : pos + step], pos + step
                if self.rng.random() < self.crash_rate / 2:  # crash inside the transaction
                    self._crash_in_txn(eng, batch)
                    crashed = True
                    break
                eng.process(self.partition, batch)
                if self.rng.random() < 0.3 and self._drain(eng):
                    crashed = True
                    break
            if not crashed:
                break
            self.crashes += 1
            eng, offsets = self._engine()
        eng.flush_all(self.partition)
        while True:
            if self._drain(eng):
                self.crashes += 1
                eng, _ = self._engine()
                continue
            left = eng.stats().partitions[self.partition].outbox
            if left["examples"] == 0 and left["archive"] == 0:
                break
        self.counters = eng.stats().partitions[self.partition].counters
        eng.release(self.partition)


def examples_by_key(d: Driver) -> dict[str, dict[str, Any]]:
    return {k: json.loads(v) for k, v in d.examples.items()}
