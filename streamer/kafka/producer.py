"""Producer sinks of the joiner: examples and DLQ records from the engine's outbox.

One idempotent producer (``enable_idempotence=True``, ``acks=all``) per daemon. Outputs carry
deterministic keys, so a re-send after a crash (between ``flush`` and ``engine.ack``) is a
duplicate with the same key, never a different record.

Hot path: ``KafkaProducer.send`` validates, serialises and partitions every record one by one
(~27 µs each, a quarter of the joiner's time). :meth:`ProducerSink.send` instead partitions a
whole list itself — the same murmur2 rule as kafka-python's ``DefaultPartitioner``, so records
land where ``send`` would put them — and appends to the producer's record accumulator
directly (what ``send`` does after its checks). Records without a key, records too large for
one request, or a topic whose metadata is not known yet go through ``send`` unchanged.
This relies on kafka-python 3.x internals (``_accumulator``, ``_metadata``, ``_sender``);
:func:`fast_path_supported` checks them once and the sink falls back to ``send`` otherwise.

Failures are sorted by kind: a record the broker will never take (too large, invalid) is
returned to the caller as a :data:`Failure` (the caller re-routes it: one bad record must not
wedge its partition), while a retriable failure (broker away, leader moving, timeout) raises
:class:`SinkError` and everything stays in the outbox for a later retry. An idempotent
kafka-python producer treats a refused record as a *fatal* error: it aborts every batch in
flight with that same error and refuses all later sends. So after a refusal the sink
replaces its producer and re-sends the failed records — together, then one at a time — and
only a record refused on its own counts as refused (the order within a partition is kept:
batches after a failed one of the same partition failed too).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.partitioner.default import DefaultPartitioner, murmur2
from kafka.record.default_records import DefaultRecordBatchBuilder

from lt4rec.config import KafkaConfig
from streamer.store.base import Output, OutRow


class SinkError(RuntimeError):
    """Outputs could not be delivered to Kafka for now (the outbox keeps them for a retry)."""


Failure = tuple[int, BaseException]  # (index in the rows sent, why the broker refused it)


class Refused(KafkaError):
    """A record whose delivery is unknown after the producer broke (re-sent, not retried)."""

    retriable = False


def retriable(exc: BaseException) -> bool:
    """Whether a send may succeed later (unknown errors count as retriable: never drop)."""
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False))
    return True


def fast_path_supported(producer: Any) -> bool:
    """Whether ``producer`` has the internals :meth:`ProducerSink.send` appends through."""
    needed = ("_accumulator", "_metadata", "_sender", "_closed", "_transaction_manager")
    if not all(hasattr(producer, a) for a in needed):
        return False
    tm = producer._transaction_manager
    return (
        type(producer.config.get("partitioner")) is DefaultPartitioner
        and producer.config.get("key_serializer") is None
        and producer.config.get("value_serializer") is None
        and producer.max_usable_produce_magic(producer.config["api_version"]) == 2
        and not (tm is not None and tm.is_transactional())
        and hasattr(producer._accumulator, "append")
        and hasattr(producer._sender, "wakeup")
    )


def append_record(
    producer: Any, tp: TopicPartition, key: bytes, value: bytes, headers: list[tuple[str, bytes]]
) -> Any:
    """Append one checked record to ``producer``'s accumulator: what ``send`` does after its
    validation (callers checked size and partition; see :func:`fast_path_supported`)."""
    future, full, new_batch, _ = producer._accumulator.append(tp, None, key, value, headers)
    if full or new_batch:
        producer._sender.wakeup()  # as send: a ready batch goes out while we keep appending
    return future


def record_fits(producer: Any, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> bool:
    """Whether one record is within ``max_request_size`` (else ``send`` raises its error)."""
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
    return bool(size <= producer.config["max_request_size"])


def make_producer(kafka: KafkaConfig, client_suffix: str) -> Any:
    """An idempotent (acks=all), batching producer sized for ``kafka.max_message_bytes``."""
    return KafkaProducer(
        bootstrap_servers=kafka.bootstrap,
        client_id=f"{kafka.client_id}-{client_suffix}",
        bootstrap_timeout_ms=kafka.bootstrap_timeout_ms,
        enable_idempotence=True,
        acks="all",
        linger_ms=kafka.linger_ms,
        batch_size=kafka.batch_bytes,
        max_request_size=max(1_048_576, kafka.max_message_bytes + 65_536),
    )


class ProducerSink:
    """Sends staged outputs and blocks until the broker acknowledged all of them."""

    def __init__(self, kafka: KafkaConfig, client_suffix: str = "sink") -> None:
        self.kafka, self.client_suffix = kafka, client_suffix
        self.producer: Any = make_producer(kafka, client_suffix)
        self._fast: bool | None = None  # fast_path_supported, decided at the first send
        self.resets = 0  # producers replaced after a refusal

    def send(self, topic: str, outputs: Sequence[Output]) -> list[Failure]:
        """Produce ``outputs`` to ``topic`` and ``flush``; the records the broker refused for
        good are returned, a retriable failure raises :class:`SinkError`."""
        return self.send_rows(topic, [(o.key, o.value, o.headers) for o in outputs])

    def send_rows(self, topic: str, rows: Sequence[OutRow]) -> list[Failure]:
        """:meth:`send` for ``(key, value, headers)`` rows as the engine staged them."""
        failed = self._pass(topic, rows)
        for alone in (False, True):  # a refusal poisoned the producer: new one, send again
            if not failed:
                break
            self._reset()
            suspects = [i for i, _ in failed]
            if not alone:
                failed = [
                    (suspects[j], e) for j, e in self._pass(topic, [rows[i] for i in suspects])
                ]
                continue
            failed = []
            for i in suspects:  # in order: a partition's records stay in order
                for _, exc in self._pass(topic, [rows[i]]):
                    failed.append((i, exc))
                    self._reset()
        return failed

    def _reset(self) -> None:
        """Replace the producer (a fresh producer id; the old one may be in a fatal state)."""
        with contextlib.suppress(Exception):
            self.producer.close(timeout=5)
        self.producer = make_producer(self.kafka, self.client_suffix)
        self._fast = None
        self.resets += 1

    def _pass(self, topic: str, rows: Sequence[OutRow]) -> list[Failure]:
        """Send ``rows`` once and flush: the refused ones; raises SinkError when retriable."""
        if not rows:
            return []
        if self._fast is None:
            self._fast = fast_path_supported(self.producer)
        parts = self.producer._metadata.partitions_for_topic(topic) if self._fast else None
        if parts:
            futures = self._append(topic, sorted(parts), rows)
        else:  # the first send waits for the topic's metadata
            futures = [self._send_one(topic, *row) for row in rows]
        broken: KafkaError | None = None
        try:
            self.producer.flush()
        except KafkaError as exc:  # kafka-python after a fatal error: "Future not done"
            broken = exc
        failed: list[Failure] = []
        for i, f in enumerate(futures):
            if isinstance(f, BaseException):
                failed.append((i, f))
            elif not f.is_done and broken is not None:  # a suspect: re-sent by send_rows
                failed.append((i, Refused(f"unknown after {broken}")))
            elif not f.succeeded():
                failed.append((i, f.exception))
        again = [exc for _, exc in failed if retriable(exc)]
        if again:
            raise SinkError(f"{len(again)} record(s) to {topic} failed: {again[0]}")
        return failed

    def _send_one(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]]
    ) -> Any:
        """``KafkaProducer.send``; a record it refuses at once (too large) is its exception."""
        try:
            return self.producer.send(topic, value=value, key=key, headers=list(headers) or None)
        except KafkaError as exc:
            return exc

    def _append(self, topic: str, parts: list[int], rows: Sequence[OutRow]) -> list[Any]:
        """Partition (murmur2, as ``DefaultPartitioner``) and append to the accumulator."""
        producer = self.producer
        n = len(parts)
        tps = {p: TopicPartition(topic, p) for p in parts}
        futures = []
        for key, value, hdrs in rows:
            headers = list(hdrs)
            if not key or producer._closed or not record_fits(producer, key, value, headers):
                futures.append(self._send_one(topic, key, value, headers))  # send's checks
                continue
            tp = tps[parts[(murmur2(key) & 0x7FFFFFFF) % n]]
            futures.append(append_record(producer, tp, key, value, headers))
        return futures

    def close(self) -> None:
        self.producer.close(timeout=10)
