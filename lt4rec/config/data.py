"""Configuration of example encoding (``[data]``) and of the traffic simulator (``[sim]``)."""

from __future__ import annotations

from dataclasses import dataclass


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

    def __post_init__(self) -> None:
        if self.impressions < 1 or self.days < 1 or self.users < 1 or self.items < 1:
            raise ValueError("impressions, days, users and items must be >= 1")
        if not (0 <= self.valid_fraction < 1 and 0 <= self.test_fraction < 1):
            raise ValueError("valid_fraction and test_fraction must be in [0, 1)")
        if self.valid_fraction + self.test_fraction >= 1:
            raise ValueError("valid_fraction + test_fraction must be < 1")
