"""Following ``topics.models``: the notices a model consumer must apply, each once.

A follower is one consumer of the one-partition topic, without a consumer group (every
replica reads every notice) and without commits (its position is the publication id it
applied, not an offset). It yields, oldest first, every notice whose ``publication`` is
newer than the newest it yielded before:

* at the first :meth:`NoticeFollower.poll` the registry's publication in service
  (:meth:`~checkpoints.Registry.current`), so a new replica serves the version in service
  even if the notice is long gone or was never sent;
* then the topic from its newest notice (``start="newest"``) or from the beginning;
* every ``registry_poll_s`` seconds the registry again (a publisher killed before its
  notice went out, a broker that is down), when a registry is given.

Malformed notices are logged, counted and skipped, never fatal. A broker that is down is
retried at the next poll; the registry keeps the follower right meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from checkpoints import Notice, Registry
from lt4rec.config import KafkaConfig, TopicsConfig
from streamer.kafka.admin import ensure_models_topic

log = logging.getLogger(__name__)
RETRY_S = 5.0  # wait between attempts to reach the broker


@dataclass
class FollowerStats:
    """Counters of one follower (servers export them as metrics)."""

    received: int = 0  # records read from the topic
    malformed: int = 0  # records that are not a valid notice (skipped)
    stale: int = 0  # valid notices not newer than the last yielded one (re-sends, old ones)
    yielded: int = 0
    registry_checks: int = 0
    errors: int = 0  # broker or registry errors (retried)


class NoticeFollower:
    """The notices to apply, newest publication last; see the module docstring."""

    def __init__(
        self,
        kafka: KafkaConfig,
        topics: TopicsConfig,
        registry: Registry | None = None,
        *,
        start: Literal["newest", "beginning"] = "newest",
        registry_poll_s: float = 0.0,
        model_name: str | None = None,
        after: int = 0,
        client_suffix: str = "models-follower",
        on_malformed: Callable[[bytes | None, str], None] | None = None,
    ) -> None:
        self.kafka = kafka
        self.topics = topics
        self.registry = registry
        self.start = start
        self.registry_poll_s = registry_poll_s
        self.model_name = model_name
        self.applied = after  # the newest publication id yielded so far
        self.client_suffix = client_suffix
        self.on_malformed = on_malformed
        self.stats = FollowerStats()
        self._consumer: Any = None
        self._next_connect = 0.0
        self._next_registry = 0.0  # first poll asks the registry

    # ---- public API --------------------------------------------------------------------
    def current(self) -> Notice | None:
        """The registry's publication in service as a notice (None: no registry / none yet)."""
        if self.registry is None:
            return None
        current = self.registry.current()
        return Notice.of(current) if current is not None else None

    def poll(self, timeout_s: float = 1.0) -> list[Notice]:
        """New notices to apply, oldest first (waits up to ``timeout_s`` for records)."""
        found: list[Notice] = []
        now = time.monotonic()
        if self.registry is not None and now >= self._next_registry:
            self._next_registry = (
                now + self.registry_poll_s if self.registry_poll_s > 0 else float("inf")
            )
            self._from_registry(found)
        consumer = self._connect()
        if consumer is None:
            if not found:
                time.sleep(min(timeout_s, max(0.0, self._next_connect - time.monotonic())))
            return found
        try:
            batches = consumer.poll(timeout_ms=int(timeout_s * 1000))
        except Exception as exc:  # broker errors surface here; retried at the next poll
            self.stats.errors += 1
            log.warning("polling %s failed (retrying): %r", self.topics.models, exc)
            return found
        for records in batches.values():
            for rec in records:
                self.stats.received += 1
                self._offer(self._parse(rec.value, f"offset {rec.offset}"), found)
        return found

    def follow(self, stopped: Callable[[], bool], timeout_s: float = 1.0) -> Iterator[Notice]:
        """Yield notices as they come until ``stopped()`` is true."""
        while not stopped():
            yield from self.poll(timeout_s)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # ---- internals ---------------------------------------------------------------------
    def _offer(self, notice: Notice | None, found: list[Notice]) -> None:
        if notice is None:
            return
        if self.model_name is not None and notice.model_name != self.model_name:
            return
        if notice.publication <= self.applied:
            self.stats.stale += 1
            return
        self.applied = notice.publication
        self.stats.yielded += 1
        found.append(notice)

    def _parse(self, raw: bytes | None, where: str) -> Notice | None:
        try:
            if raw is None:
                raise ValueError("malformed model notice: empty value")
            return Notice.from_json(raw)
        except ValueError as exc:
            self.stats.malformed += 1
            log.error("skipping a malformed notice on %s at %s: %s", self.topics.models, where, exc)
            if self.on_malformed is not None:
                self.on_malformed(raw, str(exc))
            return None

    def _from_registry(self, found: list[Notice]) -> None:
        self.stats.registry_checks += 1
        try:
            self._offer(self.current(), found)
        except Exception as exc:  # the database may be briefly unreachable: retried later
            self.stats.errors += 1
            log.warning("reading the publication in service from the registry failed: %r", exc)

    def _connect(self) -> Any:
        if self._consumer is not None:
            return self._consumer
        if time.monotonic() < self._next_connect:
            return None
        try:
            self._consumer = self._make_consumer()
        except Exception as exc:  # no broker yet: serve from the registry, retry later
            self.stats.errors += 1
            self._next_connect = time.monotonic() + RETRY_S
            log.warning("cannot follow %s yet (retrying): %r", self.topics.models, exc)
            return None
        return self._consumer

    def _make_consumer(self) -> Any:
        from kafka import KafkaConsumer, TopicPartition

        ensure_models_topic(self.kafka, self.topics)
        consumer = KafkaConsumer(
            bootstrap_servers=self.kafka.bootstrap,
            client_id=f"{self.kafka.client_id}-{self.client_suffix}",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            bootstrap_timeout_ms=self.kafka.bootstrap_timeout_ms,
            allow_auto_create_topics=False,
            check_crcs=self.kafka.check_crcs,
        )
        try:
            tp = TopicPartition(self.topics.models, 0)
            consumer.assign([tp])
            if self.start == "beginning":
                consumer.seek_to_beginning(tp)
            else:
                end = consumer.end_offsets([tp])[tp]
                consumer.seek(tp, max(0, int(end) - 1))
        except Exception:
            consumer.close()
            raise
        return consumer
