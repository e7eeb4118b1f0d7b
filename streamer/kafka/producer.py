"""Producer sinks of the joiner: examples and DLQ records from the engine's outbox.

One idempotent producer (``enable_idempotence=True``, ``acks=all``) per daemon. Outputs carry
deterministic keys, so a re-send after a crash (between ``flush`` and ``engine.ack``) is a
duplicate with the same key, never a different record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer

from lt4rec.config import KafkaConfig
from streamer.store.base import Output


class SinkError(RuntimeError):
    """Outputs could not be delivered to Kafka (the outbox keeps them for a retry)."""


class ProducerSink:
    """Sends staged outputs and blocks until the broker acknowledged all of them."""

    def __init__(self, kafka: KafkaConfig, client_suffix: str = "sink") -> None:
        self.producer: Any = KafkaProducer(
            bootstrap_servers=kafka.bootstrap,
            client_id=f"{kafka.client_id}-{client_suffix}",
            bootstrap_timeout_ms=kafka.bootstrap_timeout_ms,
            enable_idempotence=True,
            acks="all",
            linger_ms=kafka.linger_ms,
            batch_size=kafka.batch_bytes,
            max_request_size=max(1_048_576, kafka.max_message_bytes + 65_536),
        )

    def send(self, topic: str, outputs: Sequence[Output]) -> None:
        """Produce ``outputs`` to ``topic`` and ``flush``; raises :class:`SinkError` on failure."""
        if not outputs:
            return
        futures = [
            self.producer.send(topic, value=o.value, key=o.key, headers=list(o.headers) or None)
            for o in outputs
        ]
        self.producer.flush()
        failed = [f for f in futures if not f.succeeded()]
        if failed:
            raise SinkError(f"{len(failed)} record(s) to {topic} failed: {failed[0].exception}")

    def close(self) -> None:
        self.producer.close()
