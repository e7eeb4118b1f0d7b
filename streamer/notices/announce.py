"""An ``announce`` callable for jobs that publish (``lt4rec prune``, the scheduler).

:func:`open_announcer` starts a :class:`~streamer.notices.publisher.NoticePublisher` on its own
registry connection and re-sends a pending notice; when the broker is unreachable it logs and
returns ``None``: the job still publishes (registry first), the notice stays pending and the
next publisher start sends it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from checkpoints import Registry
from lt4rec.config import AppConfig
from streamer.notices.publisher import NoticeError, NoticePublisher

log = logging.getLogger(__name__)


@contextmanager
def open_announcer(cfg: AppConfig) -> Iterator[NoticePublisher | None]:
    """A started notice publisher (or None without a broker), closed on exit."""
    from kafka.errors import KafkaError

    reg = Registry(cfg.registry)
    pub = NoticePublisher(cfg.kafka, cfg.topics, reg)
    try:
        try:
            pub.start()
        except (NoticeError, KafkaError, OSError) as exc:
            log.error("notices disabled for this run (publications stay pending): %s", exc)
            yield None
            return
        yield pub
    finally:
        pub.close()
        reg.close()
