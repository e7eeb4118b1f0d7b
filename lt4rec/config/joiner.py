"""Configuration of the event joiner (``[joiner]``), its state store and the archive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class JoinerConfig:
    """Event-time windows and the label policy of the live example stream."""

    click_window_s: int = 3600  # a click counts if within this long after the impression
    attribution_window_s: int = 7 * 24 * 3600  # a conversion counts if this soon after the click
    allowed_lateness_s: int = 300  # watermark = max event time seen - allowed lateness
    orphan_grace_s: int = 3600  # labels seen before their impression are held this long
    policy: Literal["wait_full", "fnw", "es_dfm"] = "wait_full"
    es_dfm_wait_s: int = 900  # es_dfm: emit after this short wait with the observed label
    max_pending: int = 2_000_000  # bound on pending impressions per joiner process

    def __post_init__(self) -> None:
        for name in (
            "click_window_s",
            "attribution_window_s",
            "allowed_lateness_s",
            "orphan_grace_s",
            "es_dfm_wait_s",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_pending < 1:
            raise ValueError("max_pending must be >= 1")


@dataclass(frozen=True)
class StoreConfig:
    """Durable joiner state through SQLAlchemy; SQLite file is the embedded default."""

    url: str = "sqlite:///runs/state/joiner.db"

    def __post_init__(self) -> None:
        if "://" not in self.url:
            raise ValueError(f"url {self.url!r} is not a SQLAlchemy URL")


@dataclass(frozen=True)
class ArchiveConfig:
    """Daily Parquet archive of final labels, for re-pruning."""

    dir: str = "runs/archive"
    flush_rows: int = 50_000
    flush_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.flush_rows < 1 or self.flush_seconds <= 0:
            raise ValueError("flush_rows must be >= 1 and flush_seconds > 0")
