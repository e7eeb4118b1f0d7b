"""Backfill: the archive the joiner would have written, from a labelled log."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from lt4rec.config import JoinerConfig, SimConfig
from lt4rec.data.simulator import simulate
from streamer.archive import read_archive
from streamer.archive.backfill import backfill
from streamer.archive.complete import complete_until, read_markers


def test_backfilled_labels_follow_the_window_rules(tmp_path):
    sim = SimConfig(impressions=3000, days=2, users=100, items=50, seed=2)
    simulate(sim, tmp_path / "sim")
    files = [tmp_path / "sim" / f"{s}.parquet" for s in ("train", "valid", "test")]
    joiner = JoinerConfig(attribution_window_s=sim.attribution_window_s)
    assert backfill(files, tmp_path / "arch", joiner, partitions=3) == 3000
    got = read_archive(tmp_path / "arch").to_pandas().set_index("impression_id").sort_index()
    src = pa.concat_tables([pq.read_table(f) for f in files]).to_pandas()
    src = src.set_index("impression_id").sort_index()
    assert (got.click == src.click).all() and (got.conversion == src.conversion).all()
    assert (got.kind == "final").all()
    assert (got.label_ts[got.conversion == 1] == src.conversion_ts[src.conversion == 1]).all()
    unclicked = got.click == 0
    assert (got.label_ts[unclicked] == got.ts[unclicked] + 3_600_000).all()
    markers = read_markers(tmp_path / "arch")  # each partition: its largest label time
    assert sorted(markers) == [0, 1, 2] and max(markers.values()) == int(got.label_ts.max())
    assert complete_until(tmp_path / "arch", 3) == min(markers.values())

    shorter = JoinerConfig(click_window_s=60)  # stricter rules than the simulator's
    backfill(files, tmp_path / "strict", shorter, partitions=1)
    strict = read_archive(tmp_path / "strict").to_pandas()
    assert strict.click.sum() < got.click.sum()
