"""Ground-truth click and post-click conversion probabilities.

Shared signal (both tasks): user-item affinity (taste dot product, learnable only through the
interaction of user interest tags with item tags / category), age x category taste, quality.
Conflicting signal (``cfg.conflict`` scales it):

* click-bait (creator / thumbnail) raises CTR and lowers CVR — a tempting thumbnail gets the
  click, the viewer then leaves without converting;
* long videos lower CTR (costly to start) but raise CVR (a viewer who commits converts);
* feed position matters for clicking only, the hour of day differently for each task.

With ``cfg.drift > 0`` the world is non-stationary: every category's CTR and CVR logits
get their own mean-reverting random offset that moves hour by hour (std ``drift``,
correlation time two days), so recent labels say more than old ones.

Non-linear / interaction terms (device x duration, a hinge on affinity for CVR) make an MLP
beat a linear model. Intercepts are calibrated by bisection so that the mean click
probability is ``cfg.target_ctr`` and the click-weighted mean conversion probability is
``cfg.target_cvr``, whatever the other parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lt4rec.config.data import SimConfig
from lt4rec.data.simulator.traffic import HOUR_MS, Impressions, start_ms
from lt4rec.data.simulator.world import World

_DEVICE_LONG_TASTE = np.array([-0.35, -0.35, 0.1, 0.7])  # android, ios, web, tv x duration


@dataclass(frozen=True)
class Truth:
    p_click: np.ndarray  # [N] float64 P(click event)
    p_conversion: np.ndarray  # [N] float64 P(conversion event | click event)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def calibrate(logit: np.ndarray, target: float, weight: np.ndarray | None = None) -> float:
    """Intercept b with weighted mean of sigmoid(logit + b) == target (bisection)."""
    w = np.ones_like(logit) if weight is None else weight
    total = float(w.sum())
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if float((sigmoid(logit + mid) * w).sum()) / total < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _standardise(x: np.ndarray) -> np.ndarray:
    s = float(x.std())
    return (x - float(x.mean())) / (s if s > 1e-12 else 1.0)


DRIFT_HOURS = 48.0  # correlation time of the category drift (Ornstein-Uhlenbeck)


def category_drift(
    cfg: SimConfig, world: World, imp: Impressions, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """CTR and CVR logit offsets [N] of each impression's category at its hour.

    Each (task, category) offset is a mean-reverting random walk over the hours with
    stationary std ``cfg.drift`` and correlation time :data:`DRIFT_HOURS`, so rates move
    (day-to-day change std ~0.9 drift) without the overall rates running away.
    """
    hours = cfg.days * 24
    hour = np.clip((imp.ts - start_ms(cfg)) // HOUR_MS, 0, hours - 1)
    rho = float(np.exp(-1.0 / DRIFT_HOURS))
    eps = rng.normal(0.0, cfg.drift, size=(hours, 2, cfg.categories))
    walk = np.empty_like(eps)  # [hours, 2, C]
    walk[0] = eps[0]
    for h in range(1, hours):
        walk[h] = rho * walk[h - 1] + np.sqrt(1.0 - rho * rho) * eps[h]
    cat = world.item_cat[imp.item]
    return walk[hour, 0, cat], walk[hour, 1, cat]


def ground_truth(
    cfg: SimConfig, world: World, imp: Impressions, rng: np.random.Generator | None = None
) -> Truth:
    """True P(click) and P(conversion | click) of every impression (``rng``: the drift's,
    needed when ``cfg.drift > 0``)."""
    u, i = imp.user, imp.item
    affinity = _standardise(np.einsum("nk,nk->n", world.user_vec[u], world.item_vec[i]))
    age_cat = world.age_cat_pref[world.user_age[u], world.item_cat[i]]
    quality = world.item_quality[i]
    bait = world.item_bait[i]
    log_dur = (np.log(world.item_duration_s[i]) - np.log(60.0)) / 1.1  # ~ N(0, 1)
    device_dur = _DEVICE_LONG_TASTE[world.user_device[u]] * log_dur
    angle = 2.0 * np.pi * imp.hour / 24.0
    c = cfg.conflict

    ctr_logit = (
        1.2 * affinity
        + 0.6 * age_cat
        + 0.25 * quality
        + device_dur
        + world.user_click_bias[u]
        - 0.07 * imp.position
        + 0.2 * np.cos(angle - 2.0 * np.pi * 21 / 24)
        + c * (2.2 * bait - 0.35 * log_dur)
    )
    cvr_logit = (
        0.9 * affinity
        + 0.8 * np.maximum(affinity, 0.0)
        + 0.3 * age_cat
        + 0.6 * quality
        + 0.5 * device_dur
        + world.user_conv_bias[u]
        + 0.25 * np.cos(angle - 2.0 * np.pi * 23 / 24)
        + c * (-2.5 * bait + 0.45 * log_dur)
    )
    if cfg.drift > 0:
        if rng is None:
            raise ValueError("ground_truth: cfg.drift > 0 needs the drift rng")
        ctr_drift, cvr_drift = category_drift(cfg, world, imp, rng)
        ctr_logit = ctr_logit + ctr_drift
        cvr_logit = cvr_logit + cvr_drift
    p_click = sigmoid(ctr_logit + calibrate(ctr_logit, cfg.target_ctr))
    p_conv = sigmoid(cvr_logit + calibrate(cvr_logit, cfg.target_cvr, weight=p_click))
    return Truth(p_click=p_click, p_conversion=p_conv)
