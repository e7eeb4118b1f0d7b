"""Online checkpoints: one registry version per checkpoint, and where a worker starts.

**Writing** (:func:`save_online`): the existing single-file format (:mod:`checkpoints.format`:
checksummed, written to a temp file, fsynced, renamed) staged through
:meth:`checkpoints.Registry.save` as an ``online`` version whose parent is the version the
weights descend from. The file carries weights and masks, the optimiser moments, the whole
configuration (its ``model`` section is the model's own), feature spec and normalizer, and:

* ``extra["stream"]``: the :class:`~streamer.worker.position.StreamPosition` (next offset per
  partition, dedup marks, examples-trained counters, event-time range);
* ``extra["worker"]``: loss name, label policy, progressive-metric counts;
* ``aux``: ``loss/<key>`` (the feedback loss's ``state_dict``) and ``metrics/<task>/p|y``
  (the rolling windows); ``metrics``: the rolling metrics (also in the registry row).

Retention (:meth:`Registry.retain`) runs after every save.

**Starting** (:func:`load_start`), first usable of:

1. the newest ``online`` version that verifies (resume: weights, optimiser, loss state,
   offsets and marks, metric windows);
2. ``worker.init_checkpoint`` (a file, e.g. from ``lt4rec fit --checkpoint``);
3. the newest ``offline`` / ``repruned`` version that verifies.

Versions that fail verification (checksum, truncation, foreign file) are marked ``corrupt``
by :func:`checkpoints.load_newest_good`, reported in :attr:`Start.skipped` (the daemon counts
and logs them) and the next older one is tried. No model at all is a :class:`WorkerError`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any

from checkpoints import (
    Checkpoint,
    CorruptCheckpointError,
    Registry,
    VersionInfo,
    load_newest_good,
    save_checkpoint,
    verify_file,
)
from checkpoints.db import safe_url
from lt4rec.config import AppConfig
from streamer.worker.holder import ModelHolder, WorkerError
from streamer.worker.position import StreamPosition
from streamer.worker.progressive import ProgressiveMetrics

log = logging.getLogger(__name__)
ONLINE = "online"
BASE_KINDS = ("offline", "repruned")


@dataclass
class Start:
    """What a worker starts from."""

    holder: ModelHolder
    position: StreamPosition
    source: str  # human-readable: "online version 12", "file runs/model.ckpt"...
    resumed: bool  # an online lineage continues (offsets and marks restored)
    skipped: list[tuple[VersionInfo, str]] = field(default_factory=list)


def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}


def save_online(
    reg: Registry,
    cfg: AppConfig,
    holder: ModelHolder,
    position: StreamPosition,
    progress: ProgressiveMetrics,
) -> VersionInfo:
    """Write one online version (durable when this returns) and apply retention."""
    app = replace(cfg, model=holder.model_config)
    snap = _finite(progress.snapshot())
    scalars: dict[str, Any] = {**snap, **{f"trained_{k}": v for k, v in position.counters.items()}}
    extra = {
        "stream": position.to_dict(),
        "worker": {
            "loss": holder.loss.name,
            "policy": holder.loss.policy,
            "progress": progress.counts(),
        },
    }
    aux = {f"loss/{k}": v for k, v in holder.loss.state_dict().items()} | progress.aux()
    enc = holder.encoder

    def write(path: Any) -> None:
        save_checkpoint(
            path, holder.model, config=app, spec=enc.spec, normalizer=enc.normalizer,
            optimizer=holder.optimizer.state_dict(), metrics=scalars,
            step=position.counters["steps"], extra=extra, aux=aux,
        )  # fmt: skip

    info = reg.save(
        ONLINE, write, model_name=holder.model_config.name, parent=holder.version,
        metrics=scalars, data_range=(position.first_ts, position.last_ts),
    )  # fmt: skip
    reg.retain()
    return info


def _resume(
    ckpt: Checkpoint, cfg: AppConfig, holder: ModelHolder, progress: ProgressiveMetrics
) -> StreamPosition | None:
    """The checkpoint's stream position when it belongs to this topic; restores loss state
    and metric windows."""
    stream, worker = ckpt.extra.get("stream"), ckpt.extra.get("worker", {})
    if worker.get("loss") == holder.loss.name:
        holder.loss.load_state_dict(
            {k[5:]: v for k, v in ckpt.aux.items() if k.startswith("loss/")}
        )
    else:
        log.warning("checkpoint loss %r != worker.loss %r: loss state not restored",
                    worker.get("loss"), holder.loss.name)  # fmt: skip
    progress.restore(ckpt.aux, worker.get("progress", {}))
    if not stream:
        return None
    if stream.get("topic") != cfg.topics.examples:
        log.warning(
            "checkpoint position is on topic %r, not %r: starting that topic from the beginning",
            stream.get("topic"), cfg.topics.examples,
        )  # fmt: skip
        return None
    return StreamPosition.from_dict(stream)


def load_start(reg: Registry, cfg: AppConfig, progress: ProgressiveMetrics) -> Start:
    """The model, position and metric windows to start from (see module docstring)."""
    skipped: list[tuple[VersionInfo, str]] = []
    found = load_newest_good(reg, [ONLINE], skipped=skipped)
    if found is not None:
        info, ckpt, _ = found
        holder = ModelHolder.from_checkpoint(ckpt, cfg, info.version)
        pos = _resume(ckpt, cfg, holder, progress)
        resumed = pos is not None
        position = pos or StreamPosition(cfg.topics.examples)
        return Start(holder, position, f"online version {info.version}", resumed, skipped)
    fresh = StreamPosition(cfg.topics.examples)
    if cfg.worker.init_checkpoint:
        path = cfg.worker.init_checkpoint
        try:
            ckpt = verify_file(path, None)
        except CorruptCheckpointError as exc:
            raise WorkerError(f"worker.init_checkpoint is unusable: {exc}") from exc
        holder = ModelHolder.from_checkpoint(ckpt, cfg, None)
        return Start(holder, fresh, f"file {path}", False, skipped)
    found = load_newest_good(reg, BASE_KINDS, skipped=skipped)
    if found is not None:
        info, ckpt, _ = found
        holder = ModelHolder.from_checkpoint(ckpt, cfg, info.version)
        return Start(holder, fresh, f"{info.kind} version {info.version}", False, skipped)
    refused = f" ({len(skipped)} corrupt version(s) refused)" if skipped else ""
    where = safe_url(cfg.registry.url)
    raise WorkerError(
        f"no model to start from: the registry at {where} has no usable version{refused} and "
        "worker.init_checkpoint is not set (write one with `lt4rec fit --checkpoint FILE` "
        "and set worker.init_checkpoint = FILE)"
    )
