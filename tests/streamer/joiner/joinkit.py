"""Test kit for the join engine: record factories, engine factories, outbox drains.

Shared by tests/streamer/{store,joiner,archive}; the ``store_url`` fixture runs a test on the
memory store, SQLite and PostgreSQL (a fresh database per test).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from lt4rec.config import JoinerConfig, TopicsConfig
from streamer.events import Click, Conversion, Event, Impression, InvalidEvent, encode_event
from streamer.joiner import JoinEngine, SourceRecord
from streamer.store import StateStore, make_store
from tests.conftest import fresh_pg_database

TOPICS = TopicsConfig(
    impressions="imp", clicks="clk", conversions="cnv", examples="ex", dlq="dlq", partitions=1
)
TOPIC_OF = {"impression": "imp", "click": "clk", "conversion": "cnv"}
S = 1000  # ms per second
T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z

# Small windows so tests stay fast and readable (seconds).
SMALL = JoinerConfig(
    click_window_s=60,
    attribution_window_s=300,
    allowed_lateness_s=30,
    orphan_grace_s=60,
    es_dfm_wait_s=20,
    max_pending=1_000_000,
)


def joiner_cfg(**overrides: Any) -> JoinerConfig:
    return replace(SMALL, **overrides)


class Feed:
    """Builds SourceRecords of one partition with consecutive offsets per input topic."""

    def __init__(self, partition: int = 0) -> None:
        self.partition = partition
        self.next = {k: 0 for k in TOPIC_OF}

    def record(self, ev: Event) -> SourceRecord:
        kind = ev.kind
        off = self.next[kind]
        self.next[kind] += 1
        key = ev.impression_id.encode("utf-8", "surrogatepass")
        return SourceRecord(kind, TOPIC_OF[kind], self.partition, off, key, encode_event(ev), ev)

    def imp(self, iid: str, ts: int, **features: Any) -> SourceRecord:
        feats = features or {"f_int": 1, "f_str": "a"}
        return self.record(Impression(iid, ts, f"u-{iid}", f"item-{iid}", feats))

    def click(self, iid: str, ts: int) -> SourceRecord:
        return self.record(Click(iid, ts))

    def conv(self, iid: str, ts: int) -> SourceRecord:
        return self.record(Conversion(iid, ts))

    def invalid(self, kind: str, value: bytes, reason: str = "bad_json") -> SourceRecord:
        off = self.next[kind]
        self.next[kind] += 1
        err = InvalidEvent(reason, "test")
        return SourceRecord(kind, TOPIC_OF[kind], self.partition, off, b"k", value, None, err)  # type: ignore[arg-type]

    def tick(self, ts: int) -> list[SourceRecord]:
        """One event per topic at ``ts`` (ids ``tick-*``): pushes the watermark to ts - lateness."""
        n = self.next["impression"]
        iid = f"tick-{n}-{ts}"
        return [self.imp(iid, ts), self.click(iid, ts), self.conv(iid, ts)]


def new_engine(store: StateStore, cfg: JoinerConfig = SMALL, owner: str = "t") -> JoinEngine:
    eng = JoinEngine(store, cfg, TOPICS, owner, max_chunk_rows=10_000)
    eng.claim(0)
    return eng


def drain(eng: JoinEngine, sink: str = "examples", p: int = 0) -> list[dict[str, Any]]:
    """All staged outputs of a sink (examples decoded from JSON), acknowledged."""
    import json

    outs = eng.pending(p, sink, 1_000_000)  # type: ignore[arg-type]
    if outs:
        eng.ack(p, sink, outs[-1].seq)  # type: ignore[arg-type]
    if sink == "examples":
        return [json.loads(o.value) | {"_key": o.key.decode()} for o in outs]
    return [{"key": o.key, "value": o.value, **{k: v.decode() for k, v in o.headers}}
            for o in outs]  # fmt: skip


def archive_rows(eng: JoinEngine, p: int = 0) -> list[dict[str, Any]]:
    """Seal and acknowledge every staged archive row; return them."""
    rows: list[dict[str, Any]] = []
    for chunk in eng.sealed_chunks(p):
        rows += chunk.rows
        eng.ack_archive(chunk)
    while (chunk := eng.seal_archive(p)) is not None:
        rows += chunk.rows
        eng.ack_archive(chunk)
    return rows


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A store URL of an empty store: in-memory, SQLite file, fresh PostgreSQL database."""
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
    else:
        yield from fresh_pg_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def open_store(store_url: str) -> Iterator[Any]:
    """Factory: ``open_store()`` opens (or, after a simulated crash, reopens) the store."""
    opened: list[StateStore] = []
    memory: StateStore | None = None

    def make() -> StateStore:
        nonlocal memory
        if store_url == "memory://":  # one process: the memory store survives "restarts"
            memory = memory or make_store(store_url)
            return memory
        store = make_store(store_url)
        opened.append(store)
        return store

    yield make
    for s in opened:
        s.close()
