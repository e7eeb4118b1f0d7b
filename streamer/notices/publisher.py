"""Publishing with its notice: registry transaction first, then ``topics.models``.

Commit order (a publisher killed at any point leaves the old or the new version in service,
never a broken one, and the notice of the version in service is eventually sent):

1. :func:`checkpoints.publish.publish` verifies the file and records the publication in ONE
   registry transaction (the outbox row, ``notified = false``);
2. the notice is produced (idempotent producer, ``acks=all``) keyed by model name to partition
   0 of ``topics.models`` and flushed; the send must be acknowledged;
3. the publication is marked notified.

4. optionally (``registry.onnx_repo``) the version is exported as ONNX into a Triton-style
   repository (:mod:`streamer.serve.onnx_export`); a failed export is logged, never fatal.

Killed before 1 commits: nothing changed. Between 1 and 3: the next :meth:`start` of any
publisher re-sends the pending notice (:func:`~checkpoints.publish.pending_notices`); a
notice sent twice is harmless, followers apply a publication id once.
"""

from __future__ import annotations

import logging
from typing import Any

from checkpoints import Notice, Registry, publish, rollback
from checkpoints.publish import pending_notices
from lt4rec.config import KafkaConfig, TopicsConfig
from streamer.kafka.admin import ensure_models_topic

log = logging.getLogger(__name__)


class NoticeError(RuntimeError):
    """The notice could not be sent; the publication stays pending and is re-sent later."""


class NoticePublisher:
    """Announces publications of ``registry`` on ``topics.models`` (callable as ``announce``).

    The registry belongs to the caller. The producer is created at the first send; call
    :meth:`close` when done.
    """

    def __init__(
        self,
        kafka: KafkaConfig,
        topics: TopicsConfig,
        registry: Registry,
        *,
        timeout_s: float = 30.0,
        client_suffix: str = "models-publisher",
        onnx_repo: str | None = None,
    ) -> None:
        self.kafka = kafka
        self.topics = topics
        self.registry = registry
        self.timeout_s = timeout_s
        self.client_suffix = client_suffix
        self.onnx_repo = registry.cfg.onnx_repo if onnx_repo is None else onnx_repo
        self._producer: Any = None
        self._topic_ready = False

    # ---- life cycle --------------------------------------------------------------------
    def start(self) -> list[Notice]:
        """Create the topic when missing and re-send the pending notice; returns what was sent."""
        self._ensure_topic()
        pending = pending_notices(self.registry)
        for notice in pending:
            log.warning(
                "re-sending the unsent notice of publication %d (version %d)",
                notice.publication,
                notice.version,
            )
            self.send(notice)
        return pending

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=self.timeout_s)
            self._producer = None

    def __enter__(self) -> NoticePublisher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ---- publishing --------------------------------------------------------------------
    def publish(self, version: int, reason: str = "") -> Notice:
        """Verify and publish ``version`` in the registry, then announce it."""
        notice = publish(self.registry, version, reason)
        self.send(notice)
        return notice

    def rollback(self, version: int | None = None, reason: str = "") -> Notice:
        """Re-publish ``version`` (default: the one in service before the current one)."""
        notice = rollback(self.registry, version, reason)
        self.send(notice)
        return notice

    def send(self, notice: Notice) -> None:
        """Produce ``notice``, wait for the broker's acknowledgement, mark it notified.

        Raises :class:`NoticeError` when the broker does not acknowledge it in time (the
        publication stays ``notified = false``: :meth:`start` re-sends it).
        """
        from kafka.errors import KafkaError

        try:
            self._ensure_topic()
            producer = self._get_producer()
            future = producer.send(
                self.topics.models,
                key=notice.model_name.encode(),
                value=notice.to_json(),
                partition=0,
            )
            producer.flush(timeout=self.timeout_s)
            future.get(timeout=self.timeout_s)
        except KafkaError as exc:
            raise NoticeError(
                f"notice of publication {notice.publication} (version {notice.version}) not "
                f"sent to {self.topics.models} at {self.kafka.bootstrap}: {exc!r}; it stays "
                "pending and is re-sent by the next publisher start"
            ) from exc
        self.registry.mark_notified(notice.publication)
        log.info("announced publication %d: version %d", notice.publication, notice.version)
        if self.onnx_repo:
            self._export(notice)

    __call__ = send  # fits ``announce: Callable[[Notice], None]`` (scheduler, worker)

    # ---- internals ---------------------------------------------------------------------
    def _export(self, notice: Notice) -> None:
        """ONNX export of the announced version (optional; a failure never undoes it)."""
        from pathlib import Path

        from streamer.serve.onnx_export import export_version

        try:
            path = export_version(
                notice.path, notice.sha256, notice.model_name, notice.version,
                Path(self.onnx_repo),
            )  # fmt: skip
            log.info("exported version %d as ONNX: %s", notice.version, path)
        except Exception as exc:  # not fatal: the publication and its notice hold
            log.error("ONNX export of version %d failed: %s", notice.version, exc)

    def _ensure_topic(self) -> None:
        if not self._topic_ready:
            ensure_models_topic(self.kafka, self.topics)
            self._topic_ready = True

    def _get_producer(self) -> Any:
        if self._producer is None:
            from streamer.kafka.producer import make_producer

            self._producer = make_producer(self.kafka, self.client_suffix)
        return self._producer
