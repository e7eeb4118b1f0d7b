"""``simulate(cfg, out_dir)``: draw the world and the traffic, label it, write the files.

Output in ``out_dir``: ``train.parquet``, ``valid.parquet``, ``test.parquet`` (time-ordered
split by row rank in ``ts`` order), ``spec.json``, ``summary.json``. The same seed gives
byte-identical files: independent RNG streams per stage (``SeedSequence.spawn``), fixed row
groups, zstd compression, no timestamps or pandas metadata in the Parquet files.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lt4rec.config.data import SimConfig
from lt4rec.config.loader import to_dict
from lt4rec.data.simulator.columns import build_table, sim_spec
from lt4rec.data.simulator.delays import Events, draw_events, slow_conversion_share
from lt4rec.data.simulator.summary import SimSummary, split_stats
from lt4rec.data.simulator.traffic import Impressions, sample_impressions
from lt4rec.data.simulator.truth import Truth, ground_truth
from lt4rec.data.simulator.world import build_world

SPLITS = ("train", "valid", "test")


class StageRngs(NamedTuple):
    """One independent random stream per simulator stage."""

    world: np.random.Generator
    traffic: np.random.Generator
    events: np.random.Generator
    columns: np.random.Generator
    drift: np.random.Generator


def stage_rngs(seed: int) -> StageRngs:
    """The streams :func:`simulate` draws from for ``seed`` (fresh generators on every call,
    so a caller can replay any stage, e.g. the ground truth's drift)."""
    # spawn(5) keeps the first four streams of spawn(4): old seeds give the same files
    return StageRngs(*(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)))


def write_parquet(table: pa.Table, path: Path, row_group_size: int) -> None:
    """Deterministic Parquet write (zstd, fixed row groups), atomically renamed into place."""
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(
        table.replace_schema_metadata(None),
        tmp,
        compression="zstd",
        compression_level=3,
        row_group_size=row_group_size,
    )
    os.replace(tmp, path)


def split_bounds(n: int, cfg: SimConfig) -> dict[str, tuple[int, int]]:
    """Row ranges [start, stop) of train / valid / test in time order."""
    n_valid = round(n * cfg.valid_fraction)
    n_test = round(n * cfg.test_fraction)
    n_train = n - n_valid - n_test
    return {
        "train": (0, n_train),
        "valid": (n_train, n_train + n_valid),
        "test": (n_train + n_valid, n),
    }


def _event_stats(cfg: SimConfig, imp: Impressions, truth: Truth, ev: Events) -> dict[str, Any]:
    click_delay_s = (ev.click_ts - imp.ts)[ev.has_click] / 1000.0
    conv_delay_s = (ev.conversion_ts - ev.click_ts)[ev.has_conversion] / 1000.0
    # Do CTR and CVR agree on which items are good? (item-level means of the true probs)
    counts = np.bincount(imp.item)
    seen = counts >= 5
    item_ctr = np.bincount(imp.item, weights=truth.p_click)[seen] / counts[seen]
    item_cvr = np.bincount(imp.item, weights=truth.p_conversion)[seen] / counts[seen]
    corr = None
    if seen.sum() > 2 and item_ctr.std() > 0 and item_cvr.std() > 0:
        corr = float(np.corrcoef(item_ctr, item_cvr)[0, 1])

    def q(x: np.ndarray, p: float) -> float | None:
        return round(float(np.quantile(x, p)), 3) if x.size else None

    return {
        "click_events": int(ev.has_click.sum()),
        "clicks_outside_window": int((ev.has_click & (ev.click == 0)).sum()),
        "conversion_events": int(ev.has_conversion.sum()),
        "conversions_outside_window": int((ev.has_conversion & (ev.conversion == 0)).sum()),
        "click_delay_s": {"median": q(click_delay_s, 0.5), "p99": q(click_delay_s, 0.99)},
        "conversion_delay_s": {
            "median": q(conv_delay_s, 0.5),
            "p90": q(conv_delay_s, 0.9),
            "beyond_attribution_window": int((conv_delay_s > cfg.attribution_window_s).sum()),
        },
        "mean_p_click": round(float(truth.p_click.mean()), 6),
        "click_weighted_p_conversion": round(
            float((truth.p_click * truth.p_conversion).sum() / truth.p_click.sum()), 6
        ),
        "item_corr_p_click_p_conversion": None if corr is None else round(corr, 6),
    }


def simulate(cfg: SimConfig, out_dir: Path | str) -> SimSummary:
    """Simulate ``cfg.impressions`` impressions and write the files into ``out_dir``."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world_rng, traffic_rng, event_rng, column_rng, drift_rng = stage_rngs(cfg.seed)
    world = build_world(cfg, world_rng)
    imp = sample_impressions(cfg, world, traffic_rng)
    truth = ground_truth(cfg, world, imp, drift_rng)
    slow = slow_conversion_share(cfg, world.item_duration_s[imp.item])
    events = draw_events(cfg, imp.ts, truth.p_click, truth.p_conversion, event_rng, slow)
    table = build_table(cfg, world, imp, truth, events, column_rng)

    files: dict[str, str] = {}
    splits = {}
    for name, (lo, hi) in split_bounds(table.num_rows, cfg).items():
        part = table.slice(lo, hi - lo)
        files[name] = f"{name}.parquet"
        write_parquet(part, out / files[name], cfg.row_group_size)
        splits[name] = split_stats(part)
    sim_spec().save(out / "spec.json")
    summary = SimSummary(
        out_dir=str(out),
        files=files,
        overall=split_stats(table),
        splits=splits,
        events=_event_stats(cfg, imp, truth, events),
        config=to_dict(cfg),
        seconds=time.perf_counter() - t0,
    )
    text = json.dumps(summary.to_dict(), indent=2, allow_nan=False) + "\n"
    (out / "summary.json").write_text(text, encoding="utf-8")
    return summary
