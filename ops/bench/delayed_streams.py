"""The example streams of the joiner's label policies, hour by hour, without Kafka.

Used by ``ops/bench/delayed_feedback.py``. The simulator's events are replayed in event-time
order exactly as ``lt4rec stream replay`` would produce them (``streamer.replay.load_events``),
parsed with the event contract (``streamer.events.parse_event``) and fed, one UTC hour of
input events at a time, to the real :class:`~streamer.joiner.JoinEngine` on an in-memory
store (one join partition). The examples a policy stages while the engine processes hour
``h`` are what the worker would receive during hour ``h`` (watermark lag included). One
policy's run also writes the Parquet archive with the real :class:`ArchiveWriter`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from lt4rec.config import JoinerConfig, TopicsConfig
from lt4rec.train.delayed import KIND_CODES
from streamer.archive import ArchiveWriter
from streamer.events import parse_event
from streamer.joiner import JoinEngine, SourceRecord, make_store
from streamer.replay import ReplayEvents, load_events

HOUR_MS = 3_600_000
_TOPIC = {0: ("impression", "imp"), 1: ("click", "clk"), 2: ("conversion", "cnv")}


@dataclass(frozen=True)
class PolicyStream:
    """The examples one policy emitted (E rows, in emission order)."""

    policy: str
    impression_id: list[str]  # [E]
    kind: np.ndarray  # [E] int64 KIND_CODES
    click: np.ndarray  # [E] float32
    conversion: np.ndarray  # [E] float32
    ts: np.ndarray  # [E] int64 impression time, ms
    label_ts: np.ndarray  # [E] int64 label time, ms
    hour: np.ndarray  # [E] int64 hour (epoch hours) of the input events that emitted it
    emit_ts: np.ndarray  # [E] int64 event time (ms) of the last input event before emission

    def __len__(self) -> int:
        return len(self.impression_id)


def source_records(events: ReplayEvents) -> list[SourceRecord]:
    """Every replayed event as the daemon would hand it to the engine (one partition)."""
    offsets = [0, 0, 0]
    out = []
    for k, key, value in zip(events.kind.tolist(), events.keys, events.values, strict=True):
        kind, topic = _TOPIC[k]
        ev = parse_event(value, kind)  # type: ignore[arg-type]
        out.append(SourceRecord(kind, topic, 0, offsets[k], key, value, ev))  # type: ignore[arg-type]
        offsets[k] += 1
    return out


def _drain(engine: JoinEngine, hour: int, now: int, sink: list[tuple[int, int, bytes]]) -> None:
    while outs := engine.pending(0, "examples", 100_000):
        sink.extend((hour, now, o.value) for o in outs)
        engine.ack(0, "examples", outs[-1].seq)


def _archive(engine: JoinEngine, writer: ArchiveWriter, archive_dir: Path) -> None:
    while (chunk := engine.seal_archive(0)) is not None:
        writer.write(chunk, archive_dir)
        engine.ack_archive(chunk)


def run_policy(
    records: list[SourceRecord],
    ts: np.ndarray,
    joiner: JoinerConfig,
    policy: str,
    archive_dir: Path | None = None,
    batch: int = 100,
) -> PolicyStream:
    """Feed ``records`` (event times ``ts``) in ``process`` calls of ``batch`` events (one
    poll of live traffic), hour by hour; collect the emitted examples in emission order.

    The batch size matters: within one call the engine stages label-driven examples (the
    delayed positives) before watermark-driven ones (``es_dfm`` fresh rows), so hour-sized
    calls would put every positive of an hour before its negatives.
    """
    cfg = dataclasses.replace(joiner, policy=policy, max_pending=10_000_000)  # type: ignore[arg-type]
    engine = JoinEngine(make_store("memory://"), cfg, TopicsConfig(partitions=1), "bench")
    engine.claim(0)
    writer = ArchiveWriter()
    emitted: list[tuple[int, int, bytes]] = []
    hours = ts // HOUR_MS
    cuts = np.flatnonzero(np.diff(hours)) + 1
    bounds = np.r_[0, cuts, len(records)]
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        h = int(hours[lo])
        for s in range(lo, hi, batch):
            e = min(s + batch, hi)
            engine.process(0, records[s:e])
            _drain(engine, h, int(ts[e - 1]), emitted)
        if archive_dir is not None:
            _archive(engine, writer, archive_dir)
    last = int(hours[-1]) + 1 if len(hours) else 0
    engine.flush_all(0)
    _drain(engine, last, last * HOUR_MS, emitted)
    if archive_dir is not None:
        _archive(engine, writer, archive_dir)
    return _parse(policy, emitted)


def _parse(policy: str, emitted: list[tuple[int, int, bytes]]) -> PolicyStream:
    rows = [orjson.loads(v) for _, _, v in emitted]
    return PolicyStream(
        policy=policy,
        impression_id=[r["impression_id"] for r in rows],
        kind=np.array([KIND_CODES[r["kind"]] for r in rows], dtype=np.int64),
        click=np.array([r["click"] for r in rows], dtype=np.float32),
        conversion=np.array([r["conversion"] for r in rows], dtype=np.float32),
        ts=np.array([r["ts"] for r in rows], dtype=np.int64),
        label_ts=np.array([r["label_ts"] for r in rows], dtype=np.int64),
        hour=np.array([h for h, _, _ in emitted], dtype=np.int64),
        emit_ts=np.array([t for _, t, _ in emitted], dtype=np.int64),
    )


def join_streams(
    sim_dir: Path,
    joiner: JoinerConfig,
    policies: tuple[str, ...],
    archive_dir: Path,
    batch: int = 100,
) -> dict[str, PolicyStream]:
    """Each policy's stream; the first policy's run writes the archive to ``archive_dir``."""
    events = load_events(sim_dir)
    records = source_records(events)
    return {
        p: run_policy(records, events.ts, joiner, p, archive_dir if i == 0 else None, batch)
        for i, p in enumerate(policies)
    }
