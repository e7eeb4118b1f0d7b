"""Configuration of the event joiner (``[joiner]``), its state store and the archive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lt4rec.config.checks import require_finite


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
    # An event more than this far ahead of its record's timestamp (or of the wall clock, if
    # earlier) is dead-lettered as bad_ts: one bogus ts must not move the watermark.
    max_future_skew_s: int = 3600
    max_features: int = 256  # feature keys per impression; more -> DLQ too_many_features

    def __post_init__(self) -> None:
        for name in (
            "max_future_skew_s",
            "click_window_s",
            "attribution_window_s",
            "allowed_lateness_s",
            "orphan_grace_s",
            "es_dfm_wait_s",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_pending < 1 or self.max_features < 1:
            raise ValueError("max_pending and max_features must be >= 1")


@dataclass(frozen=True)
class StoreConfig:
    """Durable joiner state through SQLAlchemy; SQLite file is the embedded default."""

    url: str = "sqlite:///runs/state/joiner.db"
    connect_timeout_s: float = 10.0  # PostgreSQL: give up connecting after this long
    # PostgreSQL statement_timeout / SQLite busy timeout: no statement waits longer
    statement_timeout_s: float = 60.0
    # a transaction failing on a lost connection is retried this often, with exponential
    # backoff from retry_backoff_s, before the joiner stops with a clear message
    retries: int = 5
    retry_backoff_s: float = 0.5

    def __post_init__(self) -> None:
        require_finite(self)
        if "://" not in self.url:
            raise ValueError(f"url {self.url!r} is not a SQLAlchemy URL")
        if self.connect_timeout_s <= 0 or self.statement_timeout_s <= 0:
            raise ValueError("connect_timeout_s and statement_timeout_s must be > 0")
        if self.retries < 0 or self.retry_backoff_s < 0:
            raise ValueError("retries and retry_backoff_s must be >= 0")


@dataclass(frozen=True)
class ArchiveConfig:
    """Daily Parquet archive of final labels, for re-pruning."""

    dir: str = "runs/archive"
    flush_rows: int = 50_000
    flush_seconds: float = 30.0
    # distinct feature columns of one archive; later features are folded into the JSON
    # column `extra_features` of their rows (the schema and memory stay bounded)
    max_columns: int = 1024

    def __post_init__(self) -> None:
        require_finite(self)
        if self.flush_rows < 1 or self.flush_seconds <= 0:
            raise ValueError("flush_rows must be >= 1 and flush_seconds > 0")
        if self.max_columns < 1:
            raise ValueError("max_columns must be >= 1")
