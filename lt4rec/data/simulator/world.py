"""The simulated world: users and items with latent tastes and observable features.

Latent structure (never written out, only through features and ground-truth probabilities):

* every category has a taste vector; tags belong to categories and have vectors near theirs;
* an item's taste vector comes from its category and tags; a user's from 2-3 interest
  categories. The user-item affinity (dot product) drives both CTR and CVR, and is observable
  only through the *interaction* of user interest tags and item tags / category, which is
  what a deep model can learn and a linear model cannot;
* creators have a click-bait tendency; an item's click-bait level shows through its creator
  and (noisily) its thumbnail style. Click-bait lifts CTR and hurts CVR (the task conflict).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lt4rec.config.data import SimConfig

GENDERS = np.array(["f", "m", "u"])
DEVICES = np.array(["android", "ios", "web", "tv"])
THUMB_STYLES = np.array(["plain", "text", "face", "arrow", "shock"])
_THUMB_BAIT = np.array([-1.5, -0.5, 0.2, 1.0, 1.5])  # how strongly a style signals click-bait
DURATION_EDGES_S = np.array([15.0, 30.0, 60.0, 120.0, 300.0, 600.0])  # -> buckets 0..6
MAX_TAGS = 6


@dataclass(frozen=True)
class World:
    """Users (U) and items (I); K = latent dim, C = categories."""

    user_vec: np.ndarray  # [U, K] taste
    user_age: np.ndarray  # [U] int64 age bucket 0..6
    user_gender: np.ndarray  # [U] int64 index into GENDERS
    user_device: np.ndarray  # [U] int64 index into DEVICES
    user_activity: np.ndarray  # [U] float64 sessions-per-day level (also traffic weight)
    user_click_bias: np.ndarray  # [U] latent propensity to click
    user_conv_bias: np.ndarray  # [U] latent propensity to convert after a click
    user_tags: np.ndarray  # [U, MAX_TAGS] int64 interest tags, -1 = none
    item_vec: np.ndarray  # [I, K]
    item_cat: np.ndarray  # [I] int64
    item_creator: np.ndarray  # [I] int64
    item_bait: np.ndarray  # [I] click-bait level in [0, 1]
    item_thumb: np.ndarray  # [I] int64 index into THUMB_STYLES
    item_quality: np.ndarray  # [I] latent quality ~ N(0, 1)
    item_quality_obs: np.ndarray  # [I] observed quality score (noisy)
    item_duration_s: np.ndarray  # [I] float64 video length
    item_pop: np.ndarray  # [I] popularity weight (traffic), > 0
    item_tags: np.ndarray  # [I, MAX_TAGS] int64, -1 = none
    age_cat_pref: np.ndarray  # [7, C] taste of each age bucket for each category

    @property
    def n_users(self) -> int:
        return int(self.user_vec.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_vec.shape[0])


def unit(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit length (zero rows stay ~0)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def _tags_from(
    rng: np.random.Generator, cats: np.ndarray, cfg: SimConfig, lo: int, hi: int
) -> np.ndarray:
    """[n, MAX_TAGS] distinct sorted tags mostly of ``cats`` (20 % random), -1 padded."""
    n = cats.shape[0]
    count = np.asarray(rng.integers(lo, hi + 1, size=n))  # [n]
    c = cats[np.arange(n)[:, None], rng.integers(0, cats.shape[1], size=(n, MAX_TAGS))]
    per_cat = (cfg.tags - c + cfg.categories - 1) // cfg.categories  # tags t with t % C == c
    own = c + cfg.categories * np.floor(rng.random((n, MAX_TAGS)) * np.maximum(per_cat, 1))
    own = np.where(c < cfg.tags, own, rng.integers(0, cfg.tags, size=(n, MAX_TAGS)))
    rand = rng.integers(0, cfg.tags, size=(n, MAX_TAGS))
    tags = np.where(rng.random((n, MAX_TAGS)) < 0.2, rand, own).astype(np.int64)
    big = np.int64(cfg.tags)  # sorts after every real tag
    tags[np.arange(MAX_TAGS)[None, :] >= count[:, None]] = big
    tags = np.sort(tags, axis=1)  # drop repeated tags within a row, keep the rest in order
    tags[:, 1:][tags[:, 1:] == tags[:, :-1]] = big
    tags = np.sort(tags, axis=1)
    tags[tags == big] = -1
    return tags


def _tag_mean(tags: np.ndarray, tag_vec: np.ndarray) -> np.ndarray:
    mask = (tags >= 0)[..., None]  # [n, MAX_TAGS, 1]
    vecs = tag_vec[np.maximum(tags, 0)] * mask
    return vecs.sum(axis=1) / np.maximum(mask.sum(axis=1), 1)  # [n, K]


def build_world(cfg: SimConfig, rng: np.random.Generator) -> World:
    """Draw users and items (vectorised)."""
    k, n_cat, n_u, n_i = cfg.latent_dim, cfg.categories, cfg.users, cfg.items
    cat_vec = unit(rng.normal(size=(n_cat, k)))  # [C, K]
    tag_cat = np.arange(cfg.tags) % n_cat
    tag_vec = unit(cat_vec[tag_cat] + 0.6 * unit(rng.normal(size=(cfg.tags, k))))  # [T, K]

    cat_w = 1.0 / np.sqrt(np.arange(1, n_cat + 1))
    item_cat = rng.choice(n_cat, size=n_i, p=cat_w / cat_w.sum()).astype(np.int64)
    item_tags = _tags_from(rng, item_cat[:, None], cfg, 2, MAX_TAGS)
    item_vec = unit(cat_vec[item_cat] + _tag_mean(item_tags, tag_vec))
    item_vec = unit(item_vec + 0.35 * unit(rng.normal(size=(n_i, k))))

    creator_bait = rng.beta(0.7, 3.0, size=cfg.creators)
    creator_w = 1.0 / np.arange(1, cfg.creators + 1) ** 0.8
    item_creator = rng.choice(cfg.creators, size=n_i, p=creator_w / creator_w.sum())
    item_bait = np.clip(creator_bait[item_creator] + rng.normal(0, 0.12, n_i), 0.0, 1.0)
    gumbel = -np.log(-np.log(rng.random((n_i, len(THUMB_STYLES)))))
    style_logit = 4.0 * (item_bait[:, None] - 0.2) * _THUMB_BAIT[None, :]  # [I, styles]
    item_thumb = np.argmax(style_logit + gumbel, axis=1)

    quality = rng.normal(size=n_i)
    duration = np.exp(np.log(60.0) + 1.1 * rng.normal(size=n_i))
    pop = np.exp(1.0 * rng.normal(size=n_i) + 0.4 * quality + 0.5 * item_bait)

    interest = rng.choice(n_cat, size=(n_u, 3), p=cat_w / cat_w.sum()).astype(np.int64)
    n_int = rng.integers(2, 4, size=n_u)
    w_int = (np.arange(3)[None, :] < n_int[:, None]).astype(np.float64)  # [U, 3]
    user_vec = (cat_vec[interest] * w_int[..., None]).sum(axis=1)
    user_vec = unit(user_vec + 0.5 * unit(rng.normal(size=(n_u, k))))
    # Observed interest tags come from the interest categories actually held (+ noise tags).
    held = np.where(w_int > 0, interest, interest[:, :1])
    user_tags = _tags_from(rng, held, cfg, 2, MAX_TAGS)

    activity = np.exp(0.8 * rng.normal(size=n_u))
    log_act = np.log(activity) / 0.8
    return World(
        user_vec=user_vec,
        user_age=rng.choice(7, size=n_u, p=[0.05, 0.2, 0.25, 0.2, 0.15, 0.1, 0.05]),
        user_gender=rng.choice(3, size=n_u, p=[0.47, 0.45, 0.08]),
        user_device=rng.choice(4, size=n_u, p=[0.45, 0.35, 0.1, 0.1]),
        user_activity=activity,
        user_click_bias=0.3 * log_act + rng.normal(0, 0.4, n_u),
        user_conv_bias=rng.normal(0, 0.5, n_u),
        user_tags=user_tags,
        item_vec=item_vec,
        item_cat=item_cat,
        item_creator=item_creator.astype(np.int64),
        item_bait=item_bait,
        item_thumb=item_thumb.astype(np.int64),
        item_quality=quality,
        item_quality_obs=5.0 + 1.5 * (quality + rng.normal(0, 0.5, n_i)),
        item_duration_s=duration,
        item_pop=pop,
        item_tags=item_tags,
        age_cat_pref=rng.normal(0, 0.6, size=(7, n_cat)),
    )
