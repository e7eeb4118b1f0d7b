"""Configuration of example encoding (``[data]``) and of the traffic simulator (``[sim]``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from lt4rec.config.checks import require_finite


@dataclass(frozen=True)
class DataConfig:
    """How Parquet examples become tensors.

    Sparse values are hashed (vocabulary-free), so values unseen in training map to a bucket
    at serving time and the online worker never needs a vocabulary update.
    """

    hash_buckets: int = 100_003  # buckets per sparse / multi-valued field; 0 is reserved
    multi_max_len: int = 8  # list<string> features are truncated / padded to this length
    batch_size: int = 2048

    def __post_init__(self) -> None:
        if self.hash_buckets < 2:
            raise ValueError("hash_buckets must be >= 2")
        if self.multi_max_len < 1:
            raise ValueError("multi_max_len must be >= 1")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")


@dataclass(frozen=True)
class SimConfig:
    """Video-feed traffic simulator with known ground truth."""

    impressions: int = 200_000
    days: int = 7
    seed: int = 0
    users: int = 20_000
    items: int = 5_000
    start: str = "2026-11-01"  # first simulated day (UTC)
    valid_fraction: float = 0.1  # time-ordered split: train | valid | test
    test_fraction: float = 0.1
    attribution_window_s: int = 7 * 24 * 3600  # conversions later than this are label 0
    click_window_s: int = 3600  # clicks later than this after the impression are label 0
    target_ctr: float = 0.07  # mean P(click) per impression (bias calibrated to hit it)
    target_cvr: float = 0.08  # mean P(conversion | click) over clicked impressions
    conflict: float = 1.0  # strength of the click-bait / duration effects opposing CTR and CVR
    # Non-stationary traffic: std of a mean-reverting random offset (2-day correlation time)
    # on every category's CTR and CVR logit; 0 = stationary. Fresh labels matter only when
    # the world moves.
    drift: float = 0.0
    # Feature-dependent conversion delays: log-odds of the slow (days) conversion mode per
    # std of the video's log duration (long videos convert later); 0 = the same for all.
    delay_dependence: float = 0.0
    latent_dim: int = 8  # user / item taste vectors
    categories: int = 24
    creators: int = 600
    tags: int = 300  # vocabulary of the multi-valued tag features
    row_group_size: int = 65_536  # fixed so that output files are byte-identical per seed

    def __post_init__(self) -> None:
        require_finite(self)
        if self.impressions < 1 or self.days < 1 or self.users < 1 or self.items < 1:
            raise ValueError("impressions, days, users and items must be >= 1")
        if min(self.latent_dim, self.categories, self.creators, self.tags) < 1:
            raise ValueError("latent_dim, categories, creators and tags must be >= 1")
        if not (0 < self.target_ctr < 0.5 and 0 < self.target_cvr < 0.5):
            raise ValueError("target_ctr and target_cvr must be in (0, 0.5)")
        if self.conflict < 0 or self.drift < 0:
            raise ValueError("conflict and drift must be >= 0")
        if self.click_window_s < 0 or self.attribution_window_s < 0:
            raise ValueError("click_window_s and attribution_window_s must be >= 0")
        if self.row_group_size < 1:
            raise ValueError("row_group_size must be >= 1")
        try:
            date.fromisoformat(self.start)
        except ValueError as exc:
            raise ValueError(f"start {self.start!r} is not a date YYYY-MM-DD") from exc
        if not (0 <= self.valid_fraction < 1 and 0 <= self.test_fraction < 1):
            raise ValueError("valid_fraction and test_fraction must be in [0, 1)")
        if self.valid_fraction + self.test_fraction >= 1:
            raise ValueError("valid_fraction + test_fraction must be < 1")
