"""The served model reference and the background thread that swaps it (the swap protocol).

The request path reads :attr:`ModelSlot.current` once per request and uses that object to
the end: no lock, no check-then-use race. :class:`ModelFollowerThread` owns every change:

1. a notice newer than the last one it handled arrives (:class:`streamer.notices.NoticeFollower`:
   the registry's publication in service at start, then ``topics.models``);
2. it loads the version in full off the request path (:func:`load_served`: sha256 + checksum
   verification, rebuild, sparse export, warm-up) - or reuses the copy it still holds when a
   rollback returns to the previous version;
3. it assigns the new object to ``current`` (one reference store, atomic in CPython). Requests
   already running finish on the old object, new ones get the new one.

A version that fails to load (corrupt, missing, unservable) is refused: ``current`` is
untouched, ``lt4rec_serve_model_load_errors`` counts it and ``GET /model`` shows the reason.
At start, when the publication in service cannot be loaded, older publications are tried,
newest first, so that a replica serves the last good version rather than nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import logging
import os
import threading
import time

from checkpoints import CorruptCheckpointError, Notice, Registry
from lt4rec.config import AppConfig, ServeConfig
from streamer.notices import NoticeFollower
from streamer.serve.metrics import ServeMetrics
from streamer.serve.model import ServedModel, load_served

log = logging.getLogger(__name__)
FALLBACK_PUBLICATIONS = 20  # older publications tried at start when the current one is bad
LOADER_NICE = 10  # the follower / loader thread runs this much nicer than the request path


class ModelSlot:
    """The model being served (``current``) and the last one before it (instant rollback)."""

    def __init__(self, cfg: ServeConfig, metrics: ServeMetrics) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.current: ServedModel | None = None
        self.previous: ServedModel | None = None
        self.last_error: dict[str, object] | None = None
        self.swaps = 0
        self.changed = threading.Condition()

    def apply(self, notice: Notice) -> bool:
        """Load ``notice``'s version and swap to it; False (old model kept) when it fails."""
        model = self._reuse(notice)
        if model is None:
            t0 = time.perf_counter()
            try:
                model = load_served(notice, self.cfg)
            except Exception as exc:  # whatever fails, the old model keeps serving
                corrupt = isinstance(exc, CorruptCheckpointError | OSError)
                reason = "corrupt" if corrupt else "unservable"
                self.metrics.load_errors.labels(reason=reason).inc()
                self.last_error = {
                    "publication": notice.publication, "version": notice.version,
                    "reason": str(exc), "at": time.time(),
                }  # fmt: skip
                log.error(
                    "refusing version %d (publication %d), still serving %s: %s",
                    notice.version, notice.publication,
                    self.current.version if self.current else "nothing", exc,
                )  # fmt: skip
                return False
            self.metrics.load_seconds.observe(time.perf_counter() - t0)
        old = self.current
        # Everything alive now (libraries, the new model) moves to the GC's permanent
        # generation: a full collection would otherwise walk ~300k objects on the request
        # path (~100+ ms on 2 shared cores). Cheap; models have no reference cycles to leak.
        gc.freeze()
        self.current = model  # the swap: one reference assignment
        if old is not None and old.version != model.version:
            self.previous = old
        self.swaps += 1
        m = self.metrics
        m.swaps.labels(action=notice.action).inc()
        m.version.set(notice.version)
        m.publication.set(notice.publication)
        m.published_at.set(notice.published_at)
        log.warning(
            "serving version %d (publication %d, %s) after %s",
            notice.version, notice.publication, notice.action, old.version if old else "none",
        )  # fmt: skip
        with self.changed:
            self.changed.notify_all()
        return True

    def _reuse(self, notice: Notice) -> ServedModel | None:
        """The held copy of ``notice``'s version (same file checksum), rebound to it."""
        for held in (self.current, self.previous):
            if held is not None and (held.info.version, held.info.sha256) == (
                notice.version, notice.sha256,
            ):  # fmt: skip
                clone = copy.copy(held)
                clone.info = dataclasses.replace(
                    held.info, publication=notice.publication, action=notice.action,
                    published_at=notice.published_at, loaded_at=time.time(),
                )  # fmt: skip
                return clone
        return None


class ModelFollowerThread(threading.Thread):
    """Follows the models topic (and the registry) and applies each new notice to ``slot``."""

    def __init__(self, cfg: AppConfig, slot: ModelSlot, poll_s: float = 0.5) -> None:
        super().__init__(name="lt4rec-model-follower", daemon=True)
        self.cfg = cfg
        self.slot = slot
        self.poll_s = poll_s
        self._stop_event = threading.Event()
        self.follower: NoticeFollower | None = None

    def stop(self, timeout: float = 10.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        try:  # Linux schedules threads as tasks: loading a version yields to requests
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid)
                                                     + LOADER_NICE))  # fmt: skip
        except (AttributeError, OSError, PermissionError):
            pass
        registry = self._open_registry()
        sc = self.cfg.serve
        follower = NoticeFollower(
            self.cfg.kafka, self.cfg.topics, registry,
            start=sc.notice_start, registry_poll_s=sc.registry_poll_s,
            client_suffix=f"serve-{threading.get_native_id()}",
            on_malformed=lambda _raw, _why: self.slot.metrics.notices_malformed.inc(),
        )  # fmt: skip
        self.follower = follower
        try:
            while not self._stop_event.is_set():
                try:
                    notices = follower.poll(self.poll_s)
                    if notices:
                        ok = self.slot.apply(notices[-1])  # only the newest matters
                        if not ok and self.slot.current is None and registry is not None:
                            self._fallback(registry, notices[-1].publication)
                except Exception:  # keep following: the current model keeps serving
                    log.exception("model follower error (retrying)")
                    self._stop_event.wait(self.poll_s)
        finally:
            follower.close()
            if registry is not None:
                registry.close()

    def _open_registry(self) -> Registry | None:
        try:
            return Registry(self.cfg.registry)
        except Exception as exc:
            log.error("registry unavailable, following notices only: %s", exc)
            return None

    def _fallback(self, registry: Registry, failed: int) -> None:
        """While nothing is served: the newest older publication that loads."""
        tried = set()
        for pub in registry.publications(limit=FALLBACK_PUBLICATIONS):
            v = pub.version
            if pub.id >= failed or v.path is None or v.sha256 is None or v.version in tried:
                continue
            notice = Notice.of(pub)
            tried.add(notice.version)
            if self.slot.apply(notice):
                log.warning("serving version %d (an older publication) instead", notice.version)
                return
