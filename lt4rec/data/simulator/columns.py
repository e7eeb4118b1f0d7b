"""The simulator's output table: the column contract the streamer's replay tool relies on.

Columns (in this order):

* ``impression_id`` string unique ``i{seed}-{n:09d}`` (n = rank in time order); ``ts`` int64 ms
* sparse features: ``user_id``, ``item_id``, ``creator``, ``category``, ``gender``,
  ``device``, ``thumb_style`` (string); ``age_bucket``, ``duration_bucket``, ``hour``,
  ``position`` (int64)
* multi-valued: ``user_interests``, ``item_tags`` (list<string>)
* dense: ``user_activity``, ``item_quality``, ``item_popularity`` (float64)
* labels ``click``, ``conversion`` (int64, window rules); ``click_ts``, ``conversion_ts``
  (int64, null when no such event); oracle ``p_click``, ``p_conversion`` (float64)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lt4rec.config.data import SimConfig
from lt4rec.data.simulator.delays import Events
from lt4rec.data.simulator.traffic import Impressions
from lt4rec.data.simulator.truth import Truth
from lt4rec.data.simulator.world import DEVICES, DURATION_EDGES_S, GENDERS, THUMB_STYLES, World
from lt4rec.data.spec import FeatureSpec

SPARSE = (
    "user_id", "item_id", "creator", "category", "gender", "device", "thumb_style",
    "age_bucket", "duration_bucket", "hour", "position",
)  # fmt: skip
MULTI = ("user_interests", "item_tags")
DENSE = ("user_activity", "item_quality", "item_popularity")
TRUTH_COLUMNS = ("click", "conversion", "click_ts", "conversion_ts", "p_click", "p_conversion")


def sim_spec() -> FeatureSpec:
    """Feature spec of simulator output (written as ``spec.json``)."""
    return FeatureSpec(
        sparse=SPARSE,
        multi=MULTI,
        dense=DENSE,
        click="click",
        conversion="conversion",
        id="impression_id",
        time="ts",
        user="user_id",
    )


def _names(prefix: str, n: int, width: int) -> pa.Array:
    return pa.array([f"{prefix}{k:0{width}d}" for k in range(n)], pa.string())


def impression_ids(seed: int, n: int) -> pa.Array:
    """``i{seed}-{k:09d}`` for k in 0..n-1, built vectorised (no per-row Python)."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(n, dtype=np.int64)), pa.string()), 9, "0")
    return pc.binary_join_element_wise(f"i{seed}-", digits, "")


def _tag_lists(tags: np.ndarray, n_tags: int) -> pa.Array:
    """[n, MAX_TAGS] tag ids (-1 = none) -> list<string> array of length n."""
    valid = tags >= 0
    offsets = np.concatenate([[0], np.cumsum(valid.sum(axis=1))]).astype(np.int32)
    values = _names("t", n_tags, 4).take(pa.array(tags[valid]))
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def build_table(
    cfg: SimConfig,
    world: World,
    imp: Impressions,
    truth: Truth,
    events: Events,
    rng: np.random.Generator,
) -> pa.Table:
    """All impressions as one Arrow table in time order (vectorised per column)."""
    n = imp.ts.shape[0]
    u = pa.array(imp.user)
    i = pa.array(imp.item)
    hist_views = np.log1p(world.item_pop * 1000.0) + rng.normal(0, 0.3, world.n_items)
    duration_bucket = np.searchsorted(DURATION_EDGES_S, world.item_duration_s, side="right")
    cols: dict[str, pa.Array] = {
        "impression_id": impression_ids(cfg.seed, n),
        "ts": pa.array(imp.ts, pa.int64()),
        "user_id": _names("u", world.n_users, 6).take(u),
        "item_id": _names("v", world.n_items, 6).take(i),
        "creator": _names("cr", cfg.creators, 4).take(pa.array(world.item_creator[imp.item])),
        "category": _names("cat", cfg.categories, 2).take(pa.array(world.item_cat[imp.item])),
        "gender": pa.array(GENDERS[world.user_gender[imp.user]], pa.string()),
        "device": pa.array(DEVICES[world.user_device[imp.user]], pa.string()),
        "thumb_style": pa.array(THUMB_STYLES[world.item_thumb[imp.item]], pa.string()),
        "age_bucket": pa.array(world.user_age[imp.user], pa.int64()),
        "duration_bucket": pa.array(duration_bucket[imp.item], pa.int64()),
        "hour": pa.array(imp.hour, pa.int64()),
        "position": pa.array(imp.position, pa.int64()),
        "user_interests": _tag_lists(world.user_tags, cfg.tags).take(u),
        "item_tags": _tag_lists(world.item_tags, cfg.tags).take(i),
        "user_activity": pa.array(np.round(world.user_activity[imp.user], 4), pa.float64()),
        "item_quality": pa.array(np.round(world.item_quality_obs[imp.item], 4), pa.float64()),
        "item_popularity": pa.array(np.round(hist_views[imp.item], 4), pa.float64()),
        "click": pa.array(events.click, pa.int64()),
        "conversion": pa.array(events.conversion, pa.int64()),
        "click_ts": pa.array(events.click_ts, pa.int64(), mask=~events.has_click),
        "conversion_ts": pa.array(events.conversion_ts, pa.int64(), mask=~events.has_conversion),
        "p_click": pa.array(truth.p_click, pa.float64()),
        "p_conversion": pa.array(truth.p_conversion, pa.float64()),
    }
    return pa.table(cols)
