"""Configuration of the Kafka connection (``[kafka]``), topics (``[topics]``), metrics."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap: str = "127.0.0.1:9092"
    group_id: str = "lt4rec-joiner"
    client_id: str = "lt4rec"
    max_poll_records: int = 2000
    session_timeout_ms: int = 10_000
    max_message_bytes: int = 1_000_000  # larger events go to the dead-letter topic

    def __post_init__(self) -> None:
        if not self.bootstrap:
            raise ValueError("bootstrap must not be empty")
        if self.max_poll_records < 1 or self.max_message_bytes < 1:
            raise ValueError("max_poll_records and max_message_bytes must be >= 1")


@dataclass(frozen=True)
class TopicsConfig:
    """Topic names; the three input topics are co-partitioned by impression id."""

    impressions: str = "lt4rec.impressions"
    clicks: str = "lt4rec.clicks"
    conversions: str = "lt4rec.conversions"
    examples: str = "lt4rec.examples"
    dlq: str = "lt4rec.dlq"
    partitions: int = 4
    replication: int = 1

    def __post_init__(self) -> None:
        if self.partitions < 1 or self.replication < 1:
            raise ValueError("partitions and replication must be >= 1")


@dataclass(frozen=True)
class MetricsConfig:
    host: str = "127.0.0.1"
    port: int = 0  # Prometheus endpoint; 0 = disabled
    progress_interval_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ValueError("port must be in [0, 65535]")
