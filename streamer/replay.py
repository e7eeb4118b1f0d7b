"""Replay simulator Parquet into the three input topics, merged in event-time order.

The simulator writes ``train/valid/test.parquet`` + ``spec.json`` into one directory; each row
is an impression with nullable ``click_ts`` / ``conversion_ts``. Replay turns every row into
up to three events (impression at ``ts``, click at ``click_ts``, conversion at
``conversion_ts``), orders all of them by event time with one stable ``numpy`` sort (a k-way
merge of the three streams; ties: impression < click < conversion) and produces them keyed by
``impression_id``, so the topics are co-partitioned like production traffic.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lt4rec.config import KafkaConfig, TopicsConfig

SPLITS = ("train", "valid", "test")
DAY_MS = 86_400_000
KIND_IMPRESSION, KIND_CLICK, KIND_CONVERSION = 0, 1, 2


class ReplayError(ValueError):
    """The replay input directory is unusable (missing file, column, bad type)."""


@dataclass(frozen=True)
class ReplayEvents:
    """All events of a data set in event-time order.  E = number of events."""

    ts: np.ndarray  # [E] int64 event time, ms
    kind: np.ndarray  # [E] int8: 0 impression, 1 click, 2 conversion
    keys: list[bytes]  # [E] impression_id, UTF-8
    values: list[bytes]  # [E] JSON event (the contract of docs/streamer.md)

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class ReplayStats:
    events: int
    impressions: int
    clicks: int
    conversions: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")


def _ms(table: pa.Table, name: str, source: str) -> np.ndarray:
    """Column ``name`` as float64 milliseconds (NaN for null); accepts ints and timestamps."""
    if name not in table.column_names:
        raise ReplayError(f"{source}: missing column {name!r}")
    col = table.column(name)
    if pa.types.is_timestamp(col.type):
        col = pc.cast(col, pa.timestamp("ms")).cast(pa.int64())
    elif not pa.types.is_integer(col.type):
        raise ReplayError(f"{source}: column {name!r} must be int ms or timestamp, got {col.type}")
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def _id_value(v: Any) -> Any:
    return v if isinstance(v, int | str) else str(v)


def _feature(v: Any) -> Any:
    """A Parquet cell as a contract feature value, or None when missing."""
    if v is None:
        return None
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, list):
        return [str(x) for x in v if x is not None]
    if isinstance(v, int | str):
        return v
    return str(v)


@dataclass(frozen=True)
class ReplaySpec:
    """The parts of the simulator's ``spec.json`` that replay needs (lt4rec.data.spec format;
    read here without importing lt4rec.data, which pulls in torch)."""

    time: str
    feature_columns: tuple[str, ...]

    @classmethod
    def load(cls, path: Path) -> ReplaySpec:
        if not path.is_file():
            raise ReplayError(f"feature spec file {path} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ReplayError(f"feature spec file {path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ReplayError(f"{path}: feature spec must be a JSON object")
        cols: list[str] = []
        for key in ("sparse", "multi", "dense"):
            names = data.get(key) or []
            if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                raise ReplayError(f"{path}: {key!r} must be a list of column names")
            cols.extend(names)
        time_col = data.get("time", "ts")
        if not isinstance(time_col, str) or not time_col:
            raise ReplayError(f"{path}: 'time' must be a column name")
        return cls(time=time_col, feature_columns=tuple(cols))


def read_table(data_dir: Path | str) -> tuple[pa.Table, ReplaySpec]:
    """Concatenate the splits present in ``data_dir`` (at least one) with its spec."""
    root = Path(data_dir)
    spec = ReplaySpec.load(root / "spec.json")
    files = [root / f"{s}.parquet" for s in SPLITS if (root / f"{s}.parquet").is_file()]
    if not files:
        raise ReplayError(f"{root}: no train/valid/test.parquet found")
    tables = [pq.read_table(f) for f in files]
    try:
        table = pa.concat_tables(tables, promote_options="default")
    except pa.ArrowInvalid as exc:
        raise ReplayError(f"{root}: splits have incompatible schemas: {exc}") from exc
    for col in ("impression_id", "user_id", "item_id"):
        if col not in table.column_names:
            raise ReplayError(f"{root}: missing column {col!r}")
    return table, spec


def load_events(
    data_dir: Path | str, days: int | None = None, limit: int | None = None
) -> ReplayEvents:
    """Build the merged event stream of ``data_dir``.

    ``days`` keeps impressions of the first N UTC days, ``limit`` the first N impressions
    (by event time); their clicks and conversions are kept whenever they happen.
    """
    table, spec = read_table(data_dir)
    src = str(data_dir)
    ts = _ms(table, spec.time, src)
    if np.isnan(ts).any():
        raise ReplayError(f"{src}: column {spec.time!r} has nulls")
    click_ts = _ms(table, "click_ts", src)
    conv_ts = _ms(table, "conversion_ts", src)
    keep = np.ones(len(ts), dtype=bool)
    if days is not None:
        day0 = (int(ts.min()) // DAY_MS) * DAY_MS if len(ts) else 0
        keep &= ts < day0 + days * DAY_MS
    order = np.flatnonzero(keep)[np.argsort(ts[keep], kind="stable")]
    if limit is not None:
        order = order[:limit]
    table = table.take(pa.array(order))
    ts, click_ts, conv_ts = ts[order], click_ts[order], conv_ts[order]

    id_cols = {"impression_id", "user_id", "item_id", spec.time}
    feats = [c for c in spec.feature_columns if c not in id_cols]
    missing = [c for c in feats if c not in table.column_names]
    if missing:
        raise ReplayError(f"{src}: missing feature column(s) {', '.join(map(repr, missing))}")
    iids = [str(x) for x in table.column("impression_id").to_pylist()]
    users = table.column("user_id").to_pylist()
    items = table.column("item_id").to_pylist()
    feat_values = [table.column(c).to_pylist() for c in feats]
    dumps = json.JSONEncoder(separators=(",", ":")).encode

    keys: list[bytes] = []
    values: list[bytes] = []
    all_ts: list[np.ndarray] = []
    kinds: list[np.ndarray] = []
    n = len(iids)
    key_bytes = [i.encode("utf-8") for i in iids]
    for r in range(n):
        f = {
            name: v
            for name, col in zip(feats, feat_values, strict=True)
            if (v := _feature(col[r])) is not None
        }
        body = {
            "event": "impression",
            "impression_id": iids[r],
            "ts": int(ts[r]),
            "user_id": _id_value(users[r]),
            "item_id": _id_value(items[r]),
            "features": f,
        }
        values.append(dumps(body).encode("utf-8"))
    keys.extend(key_bytes)
    all_ts.append(ts.astype(np.int64))
    kinds.append(np.full(n, KIND_IMPRESSION, dtype=np.int8))
    for kind, name, label_ts in (
        (KIND_CLICK, "click", click_ts),
        (KIND_CONVERSION, "conversion", conv_ts),
    ):
        rows = np.flatnonzero(~np.isnan(label_ts))
        lts = label_ts[rows].astype(np.int64)
        for r, t in zip(rows.tolist(), lts.tolist(), strict=True):
            keys.append(key_bytes[r])
            values.append(dumps({"event": name, "impression_id": iids[r], "ts": t}).encode("utf-8"))
        all_ts.append(lts)
        kinds.append(np.full(len(rows), kind, dtype=np.int8))
    ts_all = np.concatenate(all_ts) if all_ts else np.zeros(0, np.int64)
    kind_all = np.concatenate(kinds) if kinds else np.zeros(0, np.int8)
    merged = np.lexsort((kind_all, ts_all))  # event time, then impression < click < conversion
    return ReplayEvents(
        ts=ts_all[merged],
        kind=kind_all[merged],
        keys=[keys[i] for i in merged.tolist()],
        values=[values[i] for i in merged.tolist()],
    )


def make_producer(kafka: KafkaConfig) -> Any:
    """A batching, idempotent producer for bulk replay."""
    from streamer.kafka.producer import make_producer as _make

    return _make(kafka, "replay")


def replay(
    events: ReplayEvents,
    kafka: KafkaConfig,
    topics: TopicsConfig,
    speedup: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    producer: Any = None,
    workers: int = 1,
) -> ReplayStats:
    """Produce ``events`` in order; with ``speedup`` X, pace by event time / X.

    ``workers`` > 1 splits the partitions over that many forked producer processes (each
    keeps the event-time order of its partitions, which is all the joiner relies on).
    ``progress(sent, total)`` is called about every 10k events (single process only).
    """
    if speedup is not None and speedup <= 0:
        raise ReplayError("speedup must be > 0")
    if workers < 1:
        raise ReplayError("workers must be >= 1")
    start = time.monotonic()
    if workers > 1 and producer is None:
        _replay_forked(events, kafka, topics, speedup, workers)
    else:
        _produce(events, np.arange(len(events)), None, kafka, topics, speedup, producer,
                 progress, time.monotonic())  # fmt: skip
    counts = np.bincount(events.kind, minlength=3) if len(events) else np.zeros(3, np.int64)
    return ReplayStats(
        events=len(events),
        impressions=int(counts[0]),
        clicks=int(counts[1]),
        conversions=int(counts[2]),
        seconds=time.monotonic() - start,
    )


def _produce(
    events: ReplayEvents,
    rows: np.ndarray,
    partitions: np.ndarray | None,
    kafka: KafkaConfig,
    topics: TopicsConfig,
    speedup: float | None,
    producer: Any,
    progress: Callable[[int, int], None] | None,
    start: float,
) -> None:
    """Send ``events`` rows ``rows`` (in order), to ``partitions`` when given."""
    by_kind = (topics.impressions, topics.clicks, topics.conversions)
    from streamer.kafka.bulk import produce_unpaced

    own = producer is None
    prod = make_producer(kafka) if own else producer
    t0 = int(events.ts[0]) if len(events) else 0
    kinds, tss = events.kind.tolist(), events.ts.tolist()
    parts = partitions.tolist() if partitions is not None else None
    keys, values = events.keys, events.values
    try:
        if speedup is None and produce_unpaced(prod, events, rows, parts, by_kind, progress):
            return
        for n, i in enumerate(rows.tolist()):
            if speedup:
                due = (tss[i] - t0) / 1000.0 / speedup - (time.monotonic() - start)
                if due > 0.001:
                    time.sleep(due)
            part = parts[i] if parts is not None else None
            prod.send(by_kind[kinds[i]], value=values[i], key=keys[i], partition=part)
            if progress is not None and n % 10_000 == 0:
                progress(n, len(rows))
        prod.flush()
    finally:
        if own:
            prod.close()


def key_partitions(keys: list[bytes], partitions: int) -> np.ndarray:
    """The default partitioner's choice (murmur2, as the Java client) for every key."""
    from kafka.partitioner.default import murmur2

    cache: dict[bytes, int] = {}
    out = np.empty(len(keys), dtype=np.int32)
    for i, k in enumerate(keys):
        p = cache.get(k)
        if p is None:
            p = cache[k] = (murmur2(k) & 0x7FFFFFFF) % partitions
        out[i] = p
    return out


def _replay_forked(
    events: ReplayEvents, kafka: KafkaConfig, topics: TopicsConfig, speedup: float | None,
    workers: int,
) -> None:  # fmt: skip
    import multiprocessing as mp

    from streamer.kafka.admin import input_partitions

    n_parts = input_partitions(kafka, topics)
    parts = key_partitions(events.keys, n_parts)
    ctx = mp.get_context("fork")
    start = time.monotonic()
    procs = []
    for w in range(min(workers, n_parts)):
        rows = np.flatnonzero(parts % workers == w)
        proc = ctx.Process(
            target=_produce,
            args=(events, rows, parts, kafka, topics, speedup, None, None, start),
            name=f"replay-{w}",
        )
        proc.start()
        procs.append(proc)
    for proc in procs:
        proc.join()
    failed = [p.name for p in procs if p.exitcode != 0]
    if failed:
        raise ReplayError(f"replay worker(s) {', '.join(failed)} failed")
