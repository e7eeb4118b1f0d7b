"""Committing the worker's offsets to Kafka: step 5 of the commit order.

The checkpoint is the truth about what was trained (:mod:`streamer.worker.trainer`); the
group's committed offsets are what lag monitoring, ``lt4rec worker status`` and operators
read. Each polling round commits asynchronously what a new checkpoint handed over; the last,
synchronous commit before the consumer closes re-sends the newest durable offsets whatever
was sent before (an asynchronous commit may have failed, or not yet left, when the consumer
closes) and, when refused (a rebalance in progress, a coordinator moving), polls the paused
consumer to let the group settle and tries again a few times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

log = logging.getLogger(__name__)
COMMIT_ATTEMPTS = 5  # of the final synchronous commit


def owned_offsets(
    topic: str, offsets: dict[int, int], owned: Iterable[int]
) -> dict[TopicPartition, OffsetAndMetadata]:
    """The commit request for the partitions this worker still owns."""
    mine = set(owned)
    return {
        TopicPartition(topic, p): OffsetAndMetadata(off, "", -1)
        for p, off in sorted(offsets.items())
        if p in mine
    }


def commit_offsets(
    consumer: Any,
    commit: dict[TopicPartition, OffsetAndMetadata],
    sync: bool,
    settle: Callable[[], None] | None = None,
) -> bool:
    """Commit ``commit`` (asynchronously, or synchronously with retries); returns whether a
    synchronous commit was acknowledged (always False for an asynchronous one). Never raises:
    the checkpoint, not the group's offsets, decides where training resumes.

    ``settle`` runs between two synchronous attempts: a commit refused because a rebalance is
    in progress succeeds only once a ``poll()`` has driven that rebalance to its end (the
    broker's own advice), so the daemon passes a short poll of its paused consumer."""
    if not commit:
        return False
    if not sync:
        try:
            consumer.commit_async(commit)
        except Exception as exc:
            log.info("offset commit skipped: %s", exc)
        return False
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            consumer.commit(commit)
            return True
        except Exception as exc:
            level = logging.WARNING if attempt == COMMIT_ATTEMPTS else logging.INFO
            log.log(level, "offset commit (attempt %d of %d) failed: %s",
                    attempt, COMMIT_ATTEMPTS, exc)  # fmt: skip
            if attempt < COMMIT_ATTEMPTS and settle is not None:
                try:
                    settle()
                except Exception as settle_exc:
                    log.info("settling the group before a commit retry: %s", settle_exc)
    return False
