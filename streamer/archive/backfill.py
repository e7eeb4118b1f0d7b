"""Backfill the archive from a labelled log (the simulator's Parquet splits, a warehouse export).

Writes the rows the joiner would have archived — one ``final`` row per impression, labels
under the window rules of ``[joiner]``, ``label_ts`` = the time the label became final — as
``dt=YYYY-MM-DD/part-p{P}-….parquet`` files of ``partitions`` join partitions, plus the
completeness markers. The re-pruning job can then run on history before any event streamed
(and its benchmarks can build archives of any size without a broker).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lt4rec.config import JoinerConfig
from streamer.archive.complete import write_marker
from streamer.archive.writer import day_of

_DROP = ("p_click", "p_conversion")  # simulator ground truth, not features


def final_rows(table: pa.Table, joiner: JoinerConfig) -> pa.Table:
    """Archive rows of ``table`` (ts, click_ts, conversion_ts, features), ``joiner``'s rules."""
    ts = table.column("ts").to_numpy().astype(np.int64)
    click_ts = table.column("click_ts").to_numpy(zero_copy_only=False).astype(np.float64)
    conv_ts = table.column("conversion_ts").to_numpy(zero_copy_only=False).astype(np.float64)
    dc = click_ts - ts
    click = ~np.isnan(click_ts) & (dc >= 0) & (dc <= joiner.click_window_s * 1000)
    dv = conv_ts - click_ts
    conv = click & ~np.isnan(conv_ts) & (dv >= 0) & (dv <= joiner.attribution_window_s * 1000)
    label_ts = np.where(
        conv, conv_ts,
        np.where(click, click_ts + joiner.attribution_window_s * 1000,
                 ts + joiner.click_window_s * 1000),
    ).astype(np.int64)  # fmt: skip
    out = table.drop_columns([c for c in _DROP if c in table.column_names])
    out = out.drop_columns(["click", "conversion", "click_ts", "conversion_ts"])
    cols = {
        "kind": pa.array(["final"] * len(ts)),
        "label_ts": pa.array(label_ts),
        "click": pa.array(click.astype(np.int64)),
        "conversion": pa.array(conv.astype(np.int64)),
        "click_ts": pc.if_else(pa.array(click), table.column("click_ts"), None),
        "conversion_ts": pc.if_else(pa.array(conv), table.column("conversion_ts"), None),
    }
    for name, col in cols.items():
        out = out.append_column(name, col)
    return out


def backfill(
    files: Sequence[str | Path], archive: str | Path, joiner: JoinerConfig, partitions: int
) -> int:
    """Archive every impression of ``files``; returns the number of rows written."""
    root = Path(archive)
    rows = final_rows(pa.concat_tables([pq.read_table(f) for f in files]), joiner)
    part = np.arange(rows.num_rows) % partitions
    days = np.array([day_of(int(t)) for t in rows.column("ts").to_numpy()])
    label_ts = rows.column("label_ts").to_numpy()
    for p in range(partitions):
        for day in sorted(set(days[part == p].tolist())):
            take = np.flatnonzero((part == p) & (days == day))
            folder = root / f"dt={day}"
            folder.mkdir(parents=True, exist_ok=True)
            name = f"part-p{p:04d}-{int(take[0]):012d}-{int(take[-1]):012d}.parquet"
            pq.write_table(rows.take(take), folder / name)
        if (part == p).any():
            write_marker(root, p, int(label_ts[part == p].max()))
    return rows.num_rows
