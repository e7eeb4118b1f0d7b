"""The body of one ``process`` / ``flush_all`` transaction (see :mod:`streamer.joiner.engine`).

Records are filtered against the stored next offsets, the states of their impression ids are
loaded in one bulk read, events are applied in the given order, the states written back in one
bulk upsert / delete, then due entries are closed in chunks of ``DUE_CHUNK`` (bounded memory),
and if the partition holds more pending impressions than its cap the ones closest to closing
are finalised early (``forced_close``). Gauges (pending, orphans, tombstones, outbox sizes) are
kept in the meta by the transitions, never by counting rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamer.events import Click, Conversion, Impression
from streamer.joiner.outputs import Collector
from streamer.joiner.rules import Rules
from streamer.joiner.state import HeldLabel, Pending, Source, State, decode, encode
from streamer.joiner.types import ProcessResult, SourceRecord
from streamer.store.base import ORPHAN, PENDING, SINKS, TOMBSTONE, OutRow, StoreTxn

DUE_CHUNK = 5_000  # entries closed per store round trip
FLUSH_WM = 2**62  # a watermark past every deadline (flush_all)
_GAUGE = {PENDING: "pending", ORPHAN: "orphans", TOMBSTONE: "tombstones"}
_KINDS = ("impression", "click", "conversion")
_EVENTS = {k: f"events.{k}" for k in _KINDS}
_LATE = {k: f"late.{k}" for k in _KINDS}
_TYPES = {"impression": Impression, "click": Click, "conversion": Conversion}


def norm_meta(data: dict[str, Any]) -> dict[str, Any]:
    """The meta dict with every section present."""
    for key in ("offsets", "max_ts", "seq", "counts", "counters"):
        data.setdefault(key, {})
    return data


def watermark_of(max_ts: dict[str, int], lateness_ms: int) -> int | None:
    """min over the three input kinds of their max event time, minus the allowed lateness."""
    if any(k not in max_ts for k in _KINDS):
        return None
    return min(max_ts[k] for k in _KINDS) - lateness_ms


def bad_id(iid: str) -> str:
    """Why ``iid`` cannot key the state ('' if it can): NUL or a lone surrogate."""
    if iid.isascii():
        return "" if "\x00" not in iid else "impression_id contains NUL"
    try:
        iid.encode("utf-8")
    except UnicodeEncodeError:
        return "impression_id is not valid Unicode (lone surrogate)"
    return ""


def _add(a: list[int], b: list[int]) -> list[int]:
    return [x + y for x, y in zip(a, b, strict=True)]


class BatchApplier:
    """Applies record batches of one partition inside a store transaction."""

    def __init__(self, rules: Rules, pending_cap: int) -> None:
        self.rules = rules
        self.pending_cap = pending_cap
        self._kept: dict[str, list[tuple[int, list[OutRow]]]] | None = {}
        self._n_kept = 0
        self._counted: dict[str, int] = {}  # counter increments of the current call

    def run(
        self,
        p: int,
        txn: StoreTxn,
        data: dict[str, Any],
        records: Sequence[SourceRecord],
        flush: bool,
    ) -> ProcessResult:
        """Apply ``records`` (or flush everything); mutates ``data`` (the meta to write)."""
        self._kept = None if flush else {}  # flush_all: may close everything, keep nothing
        self._n_kept = 0
        self._counted = {}
        offsets, max_ts, counts = data["offsets"], data["max_ts"], data["counts"]
        wm0 = watermark_of(max_ts, self.rules.lateness)
        out = Collector(self.rules.max_bytes)
        todo: list[SourceRecord] = []
        skipped = 0
        for r in records:
            if r.partition != p:
                raise ValueError(f"record of {r.topic}[{r.partition}] passed for partition {p}")
            if r.offset < offsets.get(r.topic, 0):
                skipped += 1
                continue
            offsets[r.topic] = r.offset + 1
            todo.append(r)
        ids = [r.event.impression_id for r in todo if r.event is not None]
        ids = [i for i in ids if not bad_id(i)]
        found = txn.get(ids)
        work: dict[str, State | None] = {i: decode(e) for i, e in found.items()}
        for r in todo:
            src = Source(r.topic, r.partition, r.offset, r.key, r.value)
            ev = r.event
            if ev is None:
                reason = r.error.reason if r.error is not None else "invalid"
                out.dlq(src, reason, r.error.detail if r.error is not None else "")
                continue
            if not isinstance(ev, _TYPES[r.kind]):
                raise ValueError(f"{r.topic}@{r.offset}: a {type(ev).__name__} is not a {r.kind}")
            bad = bad_id(ev.impression_id)
            if bad:
                out.dlq(src, "bad_id", bad)
                continue
            out.count(_EVENTS[r.kind])
            if wm0 is not None and ev.ts < wm0:
                out.count(_LATE[r.kind])
            if ev.ts > max_ts.get(r.kind, -1):
                max_ts[r.kind] = ev.ts
            iid = ev.impression_id
            st = work.get(iid)
            if isinstance(ev, Impression):
                work[iid] = self.rules.impression(iid, ev, st, wm0, src, out)
            else:
                work[iid] = self.rules.label(iid, HeldLabel(r.kind, ev.ts, src), st, out)
        self._write(txn, work, {i: e.state for i, e in found.items()}, counts)
        wm = FLUSH_WM if flush else watermark_of(max_ts, self.rules.lateness)
        staged = self._stage(txn, out, data)
        if wm is not None:
            staged = _add(staged, self._close_due(txn, wm, out, data))
        if counts.get("pending", 0) > self.pending_cap:
            self._force_close(txn, counts["pending"] - self.pending_cap, max_ts, out, counts)
            staged = _add(staged, self._stage(txn, out, data))
        return ProcessResult(
            partition=p, applied=len(todo), skipped=skipped, examples=staged[0],
            dlq=staged[1], archived=staged[2], watermark=watermark_of(max_ts, self.rules.lateness),
            next_offsets=dict(offsets), staged=self._kept, counters=self._counted,
        )  # fmt: skip

    def _write(
        self,
        txn: StoreTxn,
        work: dict[str, State | None],
        old: dict[str, int],
        counts: dict[str, int],
    ) -> None:
        puts, dels = [], []
        for iid, st in work.items():
            before = old.get(iid)
            if before is not None:
                counts[_GAUGE[before]] = counts.get(_GAUGE[before], 0) - 1
            if st is None:
                if before is not None:
                    dels.append(iid)
                continue
            e = encode(iid, st, self.rules.deadline(st))
            counts[_GAUGE[e.state]] = counts.get(_GAUGE[e.state], 0) + 1
            puts.append(e)
        txn.put(puts)
        txn.delete(dels)

    def _close_due(self, txn: StoreTxn, wm: int, out: Collector, data: dict[str, Any]) -> list[int]:
        counts = data["counts"]
        counts["tombstones"] = counts.get("tombstones", 0) - txn.expire(TOMBSTONE, wm)
        staged = [0, 0, 0]
        while True:
            due = txn.due(wm, DUE_CHUNK)
            if not due:
                return staged
            work = {e.impression_id: self.rules.advance(e.impression_id, decode(e), wm, out)
                    for e in due}  # fmt: skip
            self._write(txn, work, {e.impression_id: e.state for e in due}, data["counts"])
            staged = _add(staged, self._stage(txn, out, data))

    def _force_close(
        self,
        txn: StoreTxn,
        n: int,
        max_ts: dict[str, int],
        out: Collector,
        counts: dict[str, int],
    ) -> None:
        """Over the pending cap: finalise the ``n`` pending impressions closest to closing."""
        now = max(max_ts.values(), default=0)
        victims = txn.oldest(PENDING, n)
        work: dict[str, State | None] = {}
        for e in victims:
            st = decode(e)
            assert isinstance(st, Pending)
            work[e.impression_id] = self.rules.finalise(e.impression_id, st, now, out)
        out.count("forced_close", len(victims))
        self._write(txn, work, {e.impression_id: e.state for e in victims}, counts)

    def _keep(self, sink: str, first: int, rows: list[OutRow]) -> None:
        """Remember staged example / DLQ rows for ``ProcessResult.staged``.

        Bounded like the due entries: past ``DUE_CHUNK`` rows keep none (the daemon then reads
        the outbox in chunks), so memory per call stays one chunk, whatever closes.
        """
        if sink == "archive" or self._kept is None:
            return
        self._n_kept += len(rows)
        if self._n_kept > DUE_CHUNK:
            self._kept = None
            return
        self._kept.setdefault(sink, []).append((first, rows))

    def _stage(self, txn: StoreTxn, out: Collector, data: dict[str, Any]) -> list[int]:
        """Number the collected outputs, stage them and fold counters into the meta."""
        staged = out.drain(data["seq"])
        counts, counters = data["counts"], data["counters"]
        for sink, (first, rows) in staged.items():
            txn.stage(sink, first, rows)
            self._keep(sink, first, rows)
            counts[f"outbox.{sink}"] = counts.get(f"outbox.{sink}", 0) + len(rows)
        counted = self._counted
        for name, n in out.counters.items():
            counters[name] = counters.get(name, 0) + n
            counted[name] = counted.get(name, 0) + n
        out.counters.clear()
        return [len(staged[s][1]) if s in staged else 0 for s in SINKS]
