"""Configuration of the Kafka connection (``[kafka]``), topics (``[topics]``), metrics."""

from __future__ import annotations

from dataclasses import dataclass

from lt4rec.config.checks import check_topic_name, require_finite


@dataclass(frozen=True)
class KafkaConfig:
    """Broker connection, consumer group and producer tuning of the joiner and replay tool."""

    bootstrap: str = "127.0.0.1:9092"
    group_id: str = "lt4rec-joiner"
    client_id: str = "lt4rec"
    max_poll_records: int = 2000
    poll_timeout_ms: int = 500  # one consumer.poll() waits at most this long for records
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    max_poll_interval_ms: int = 300_000
    max_message_bytes: int = 1_000_000  # larger events go to the dead-letter topic
    linger_ms: int = 20  # producer batching delay (replay tool and sinks)
    batch_bytes: int = 512 * 1024  # producer batch size per partition
    bootstrap_timeout_ms: int = 30_000  # give up (clear error) when no broker answers
    # Verify record CRCs on fetch. Pure Python (slow) unless the `crc32c` package is installed.
    check_crcs: bool = True
    # A rebalance (revocation -> assignment) not completed after this long is reported (log,
    # metric, status) and retried with a fresh consumer; after `rebalance_retries` such
    # retries in a row the joiner exits with status 3.
    rebalance_timeout_s: float = 120.0
    rebalance_retries: int = 3

    def __post_init__(self) -> None:
        require_finite(self)
        if self.rebalance_timeout_s <= 0 or self.rebalance_retries < 0:
            raise ValueError("rebalance_timeout_s must be > 0 and rebalance_retries >= 0")
        if not self.bootstrap:
            raise ValueError("bootstrap must not be empty")
        if self.max_poll_records < 1 or self.max_message_bytes < 1:
            raise ValueError("max_poll_records and max_message_bytes must be >= 1")
        if self.poll_timeout_ms < 0 or self.linger_ms < 0:
            raise ValueError("poll_timeout_ms and linger_ms must be >= 0")
        if self.batch_bytes < 1 or self.bootstrap_timeout_ms < 1:
            raise ValueError("batch_bytes and bootstrap_timeout_ms must be >= 1")
        if not 0 < self.heartbeat_interval_ms < self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be in (0, session_timeout_ms)")
        if self.max_poll_interval_ms < self.session_timeout_ms:
            raise ValueError("max_poll_interval_ms must be >= session_timeout_ms")


@dataclass(frozen=True)
class TopicsConfig:
    """Topic names; the three input topics are co-partitioned by impression id."""

    impressions: str = "lt4rec.impressions"
    clicks: str = "lt4rec.clicks"
    conversions: str = "lt4rec.conversions"
    examples: str = "lt4rec.examples"
    dlq: str = "lt4rec.dlq"
    models: str = "lt4rec.models"  # notices of published model versions (one partition)
    partitions: int = 4
    replication: int = 1

    def __post_init__(self) -> None:
        if self.partitions < 1 or self.replication < 1:
            raise ValueError("partitions and replication must be >= 1")
        names = [
            self.impressions, self.clicks, self.conversions, self.examples, self.dlq, self.models
        ]  # fmt: skip
        for key in ("impressions", "clicks", "conversions", "examples", "dlq", "models"):
            check_topic_name(key, getattr(self, key))
        if len(set(names)) != len(names):
            raise ValueError("the six topic names must be distinct")

    @property
    def inputs(self) -> dict[str, str]:
        """Input topic name -> event kind it carries."""
        return {
            self.impressions: "impression",
            self.clicks: "click",
            self.conversions: "conversion",
        }


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus endpoint and the console progress line of the joiner."""

    host: str = "127.0.0.1"
    port: int = 0  # Prometheus endpoint; 0 = disabled
    progress_interval_s: float = 5.0  # 0 = no progress line

    def __post_init__(self) -> None:
        require_finite(self)
        if not 0 <= self.port < 65536:
            raise ValueError("port must be in [0, 65535]")
        if self.progress_interval_s < 0:
            raise ValueError("progress_interval_s must be >= 0")
