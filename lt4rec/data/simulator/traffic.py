"""Who sees what, when: impressions with diurnal timestamps and feed positions.

Active users appear more often; half of the feed is personalised (an item of one of the
user's interest categories, by popularity) and half is global popularity, so the candidate
set is neither random nor perfectly matched. Output is sorted by impression time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from lt4rec.config.data import SimConfig
from lt4rec.data.simulator.world import World

# Relative traffic per UTC hour: quiet at night, a peak in the evening.
DIURNAL = np.array(
    [0.5, 0.3, 0.2, 0.15, 0.15, 0.2, 0.35, 0.6, 0.8, 0.85, 0.9, 0.95,
     1.05, 1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.5, 1.7, 1.75, 1.5, 0.9]
)  # fmt: skip
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
MAX_POSITION = 20


@dataclass(frozen=True)
class Impressions:
    """N impressions in time order."""

    ts: np.ndarray  # [N] int64 ms since epoch
    user: np.ndarray  # [N] int64 user index
    item: np.ndarray  # [N] int64 item index
    hour: np.ndarray  # [N] int64 UTC hour of day 0..23
    position: np.ndarray  # [N] int64 slot in the feed 0..MAX_POSITION-1


def start_ms(cfg: SimConfig) -> int:
    """Epoch milliseconds of ``cfg.start`` at 00:00 UTC."""
    day = datetime.fromisoformat(cfg.start).replace(tzinfo=UTC)
    return int(day.timestamp()) * 1000


def _categorical(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(weights)
    idx = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    return np.minimum(idx, len(weights) - 1).astype(np.int64)


def _personalised(
    rng: np.random.Generator, world: World, cats: np.ndarray, n_cat: int
) -> np.ndarray:
    """Item of category ``cats[j]`` drawn by popularity, vectorised.  [n] int64."""
    order = np.lexsort((np.arange(world.n_items), world.item_cat))  # items grouped by category
    cat_sorted = world.item_cat[order]
    pop = world.item_pop[order]
    totals = np.bincount(cat_sorted, weights=pop, minlength=n_cat)
    within = np.cumsum(pop) - (np.cumsum(totals) - totals)[cat_sorted]
    cdf = cat_sorted + within / totals[cat_sorted]  # category c occupies (c, c + 1]
    has_items = totals[cats] > 0
    target = cats + (1.0 - rng.random(len(cats)))  # in (c, c + 1]
    pos = np.minimum(np.searchsorted(cdf, target, side="left"), world.n_items - 1)
    global_pick = _categorical(rng, world.item_pop, len(cats))
    return np.where(has_items, order[pos], global_pick)


def sample_impressions(cfg: SimConfig, world: World, rng: np.random.Generator) -> Impressions:
    """Draw ``cfg.impressions`` impressions over ``cfg.days`` days, sorted by time."""
    n = cfg.impressions
    day = rng.integers(0, cfg.days, size=n)
    hour = _categorical(rng, DIURNAL, n)
    ts = start_ms(cfg) + day * DAY_MS + hour * HOUR_MS + rng.integers(0, HOUR_MS, size=n)
    user = _categorical(rng, world.user_activity, n)
    # Personalised half: one of the user's interest categories (from their tags' categories).
    tags = world.user_tags[user]  # [N, MAX_TAGS]
    pick = rng.integers(0, tags.shape[1], size=n)
    tag = tags[np.arange(n), pick]
    tag = np.where(tag >= 0, tag, tags[:, 0])
    cats = tag % cfg.categories
    item = np.where(
        rng.random(n) < 0.5,
        _personalised(rng, world, cats, cfg.categories),
        _categorical(rng, world.item_pop, n),
    )
    position = np.minimum(rng.geometric(0.15, size=n) - 1, MAX_POSITION - 1)
    order = np.argsort(ts, kind="stable")
    return Impressions(
        ts=ts[order].astype(np.int64),
        user=user[order],
        item=item[order].astype(np.int64),
        hour=hour[order],
        position=position[order].astype(np.int64),
    )
