"""How much of the simulator's oracle CVR AUC can the features reveal at all?

The "oracle" of ``docs/benchmarks.md`` scores test rows with the simulator's true
P(conversion | click), which uses latent quantities no feature carries: each user's
conversion propensity (``user_conv_bias``, one N(0, 0.5) draw per user) and the random part
of the user / item taste vectors (the affinity is observable only through interest tags,
item tags and category). This script rebuilds the same world (same seed streams as
:func:`lt4rec.data.simulator.simulate`) and scores the same clicked test rows with the true
CVR logit after removing those latent parts one at a time:

* ``oracle``: the true probabilities (the benchmark's oracle row);
* ``no user conv bias``: ``user_conv_bias`` set to 0;
* ``user tag taste`` / ``item tag taste``: only the user's / only the item's vector so;
* ``tag affinity``: user / item taste vectors replaced by their parts explained by observed
  features (least squares on the user's interest tags; on the item's tags and category),
  everything else true;
* ``both``: the two together, an upper bound for a model that learns every observed feature
  perfectly but cannot learn per-id latent factors (about 0.2 conversions per user in train).

A model can in principle learn per-user / per-item factors through ID embeddings, so the
last rows are not strict bounds; they say how much of the oracle gap is the latent signal.

Run: ``python ops/bench/oracle_gap.py --impressions 1000000 [--days 7] --seed 0``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import numpy as np

from lt4rec.config.data import SimConfig
from lt4rec.data.simulator.core import split_bounds, stage_rngs
from lt4rec.data.simulator.delays import draw_events, slow_conversion_share
from lt4rec.data.simulator.traffic import sample_impressions
from lt4rec.data.simulator.truth import ground_truth
from lt4rec.data.simulator.world import World, build_world, unit
from lt4rec.metrics.ranking import auc


def tag_explained(world: World, cfg: SimConfig) -> World:
    """The world with taste vectors rebuilt from observed tags / category only (least
    squares of the true vectors on the observed tag indicators, so the tag vectors are the
    best the tags can say)."""

    def fit_vectors(rows: list[np.ndarray], target: np.ndarray, width: int) -> np.ndarray:
        # indicator design [n, width] -> least-squares per-indicator vectors, then predictions
        n = target.shape[0]
        x = np.zeros((n, width))
        for cols in rows:
            ok = cols >= 0
            r = np.nonzero(ok)[0]
            x[r, cols[ok]] += 1.0
        x /= np.maximum(x.sum(axis=1, keepdims=True), 1.0)
        coef, *_ = np.linalg.lstsq(x, target, rcond=None)
        return x @ coef  # [n, K]

    tags = cfg.tags
    user_cols = [world.user_tags[:, j] for j in range(world.user_tags.shape[1])]
    user_vec = fit_vectors(user_cols, world.user_vec, tags)
    item_cols = [world.item_tags[:, j] for j in range(world.item_tags.shape[1])]
    item_cols.append(tags + world.item_cat)  # category indicators after the tag indicators
    item_vec = fit_vectors(item_cols, world.item_vec, tags + cfg.categories)
    return dataclasses.replace(world, user_vec=unit(user_vec), item_vec=unit(item_vec))


def oracle_gap(cfg: SimConfig) -> dict[str, float]:
    """CVR AUC on the clicked test rows of every variant (module docstring), by name."""
    rngs = stage_rngs(cfg.seed)  # the streams simulate() draws from
    world = build_world(cfg, rngs.world)
    imp = sample_impressions(cfg, world, rngs.traffic)
    truth = ground_truth(cfg, world, imp, rngs.drift)
    slow = slow_conversion_share(cfg, world.item_duration_s[imp.item])
    ev = draw_events(cfg, imp.ts, truth.p_click, truth.p_conversion, rngs.events, slow)
    lo, hi = split_bounds(len(imp.ts), cfg)["test"]
    clicked = np.zeros(len(imp.ts), dtype=bool)
    clicked[lo:hi] = ev.click[lo:hi] == 1
    y = ev.conversion[clicked]

    no_bias = dataclasses.replace(world, user_conv_bias=np.zeros_like(world.user_conv_bias))
    tagged = tag_explained(world, cfg)
    user_tagged = dataclasses.replace(world, user_vec=tagged.user_vec)
    item_tagged = dataclasses.replace(world, item_vec=tagged.item_vec)
    both = dataclasses.replace(tagged, user_conv_bias=np.zeros_like(world.user_conv_bias))
    variants = {
        "no user conv bias": no_bias, "user tag taste": user_tagged,
        "item tag taste": item_tagged, "tag affinity": tagged, "both": both,
    }  # fmt: skip
    rows = {"clicked_test_rows": float(clicked.sum()), "conversions": float(y.sum()),
            "oracle": auc(truth.p_conversion[clicked], y)}  # fmt: skip
    for name, w in variants.items():
        # the drift offsets (cfg.drift > 0) are replayed from the same stream for every variant
        t = ground_truth(cfg, w, imp, stage_rngs(cfg.seed).drift)
        rows[name] = auc(t.p_conversion[clicked], y)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--impressions", type=int, default=1_000_000)
    p.add_argument("--days", type=int, default=SimConfig.days)
    p.add_argument("--seed", type=int, default=0, help="simulator seed (data seed)")
    args = p.parse_args(argv)
    if args.impressions < 1000 or args.days < 1:
        p.error("--impressions must be >= 1000 and --days >= 1")
    cfg = dataclasses.replace(
        SimConfig(), impressions=args.impressions, days=args.days, seed=args.seed
    )
    rows = oracle_gap(cfg)
    print(f"clicked test rows {rows['clicked_test_rows']:,.0f}, "
          f"conversions {rows['conversions']:,.0f}")  # fmt: skip
    names = [k for k in rows if k not in ("clicked_test_rows", "conversions")]
    for name in names:
        gap = rows["oracle"] - rows[name]
        print(f"{name:>20}: CVR AUC {rows[name]:.4f}  (oracle - this {gap:+.4f})")
    print(json.dumps({k: round(v, 4) for k, v in rows.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
