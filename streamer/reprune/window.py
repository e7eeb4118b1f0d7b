"""Which archive rows a re-pruning run uses: the window, its splits and its label cut.

All times are event times in ms (UTC). With ``cut`` the archive's completeness marker
(:func:`streamer.archive.complete.complete_until`: every row final at or before it is
archived) and ``delay`` the time after which an impression's labels are final
(``reprune.label_delay_s``, default click window + attribution window)::

    end        = min(--end, floor(cut - delay))   impressions before `end` have final labels
                                                  (floored to reprune.end_granularity_s)
    holdout    = [end - holdout_hours, end)       the gate's rows
    valid      = [holdout start - valid_hours, holdout start)   ticket + epoch selection
    train      = [end - window_days, valid start)
    every split: rows with label_ts <= cut        (a row finalised later is not archived yet)

The new model has then seen exactly the train rows; the worker's catch-up after a hot-swap
trains every example with ``ts >= train_end`` or ``label_ts > cut`` (no example in neither).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as ds

from lt4rec.config import AppConfig
from streamer.archive import archive_files, day_of
from streamer.archive.complete import complete_until, stream_ended

_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS


class WindowError(ValueError):
    """No usable window (empty archive, dates out of range...)."""


@dataclass(frozen=True)
class Window:
    start: int
    train_end: int  # = valid start
    holdout_start: int  # = valid end
    end: int
    label_cut: int
    complete: bool  # label_cut came from completeness markers of every partition
    files: tuple[str, ...]

    def filter(self, lo: int, hi: int) -> ds.Expression:
        """Rows with ``lo <= ts < hi`` and ``label_ts <= label_cut``."""
        f = ds.field
        return (f("ts") >= lo) & (f("ts") < hi) & (f("label_ts") <= self.label_cut)

    @property
    def train(self) -> ds.Expression:
        return self.filter(self.start, self.train_end)

    @property
    def valid(self) -> ds.Expression:
        return self.filter(self.train_end, self.holdout_start)

    @property
    def holdout(self) -> ds.Expression:
        return self.filter(self.holdout_start, self.end)

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        d["files"] = len(self.files)
        for k in ("start", "train_end", "holdout_start", "end", "label_cut"):
            d[f"{k}_utc"] = _iso(d[k])
        return d


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def parse_end(value: str) -> int:
    """``--end``: a date (``2026-11-05`` = that day's 00:00 UTC) or an ISO time, in ms."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise WindowError(f"--end {value!r} is not a date (YYYY-MM-DD) or ISO time") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def plan_window(cfg: AppConfig, end: int | None = None, days: float | None = None) -> Window:
    """The window of a run ending at ``end`` (default: as late as labels are final)."""
    rc = cfg.reprune
    root = Path(cfg.archive.dir)
    files = archive_files(root)
    if not files:
        raise WindowError(f"the archive {root} has no files yet")
    cut = complete_until(root, cfg.topics.partitions)
    complete = cut is not None
    ended = stream_ended(root, cfg.topics.partitions)
    last_ts: int | None = None
    if ended:  # every label is final: everything archived counts, up to the last impression
        cut, last_ts = _max_of(files, ("label_ts", "ts"))
    elif cut is None:  # no markers for every partition: everything archived so far counts
        (cut,) = _max_of(files, ("label_ts",))
    delay_s = rc.label_delay_s
    if delay_s is None:
        delay_s = cfg.joiner.click_window_s + cfg.joiner.attribution_window_s
    grain = rc.end_granularity_s * 1000
    latest = cut - delay_s * 1000
    if last_ts is not None:
        latest = min(latest, last_ts + 1)
    latest = latest // grain * grain
    stop = latest if end is None else min(end, latest)
    span = int((days if days is not None else rc.window_days) * _DAY_MS)
    holdout_start = stop - int(rc.holdout_hours * _HOUR_MS)
    train_end = holdout_start - int(rc.valid_hours * _HOUR_MS)
    start = stop - span
    if train_end <= start:
        raise WindowError("window_days is shorter than valid_hours + holdout_hours")
    first_day, last_day = day_of(start), day_of(stop - 1)
    chosen = tuple(
        str(f) for f in files if first_day <= f.parent.name.removeprefix("dt=") <= last_day
    )
    if not chosen:
        raise WindowError(
            f"no archive files between {first_day} and {last_day} (the window ends at "
            f"{_iso(stop)}: labels are final {delay_s}s after the impression)"
        )
    return Window(start, train_end, holdout_start, stop, cut, complete, chosen)


def _max_of(files: list[Path], columns: tuple[str, ...]) -> tuple[int, ...]:
    """The largest value of each of ``columns`` in the archive, in one streamed pass."""
    best: list[int | None] = [None] * len(columns)
    scan = ds.dataset([str(f) for f in files], format="parquet").to_batches(columns=list(columns))
    for rb in scan:
        for i in range(len(columns)):
            value = pc.max(rb.column(i)).as_py()
            cur = best[i]
            if value is not None and (cur is None or value > cur):
                best[i] = int(value)
    if any(b is None for b in best):
        raise WindowError("the archive has no rows")
    return tuple(int(b) for b in best if b is not None)
