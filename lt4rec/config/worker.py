"""Configuration of the online worker (``[worker]``): ``lt4rec worker``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class WorkerConfig:
    """How the worker starts, cuts micro-batches, trains, checkpoints and reports.

    The worker consumes ``topics.examples`` as consumer group ``group_id`` (the joiner's group
    is ``kafka.group_id``), trains with ``[train] cvr_loss / cvr_weight`` and writes every
    checkpoint as an ``online`` version of ``[registry]``.
    """

    group_id: str = "lt4rec-worker"
    # Static group membership (KIP-345) when set, unique per worker (e.g. the pod name): a
    # restarted worker takes its partitions back at once, without waiting for the old
    # member's session to expire or rebalancing the others. Empty: dynamic membership.
    instance_id: str = ""
    # Model to start from when the registry has no usable online version (e.g. the file
    # written by `lt4rec fit --checkpoint`); empty: the newest good offline/repruned version.
    init_checkpoint: str = ""
    # Delayed-feedback loss (lt4rec.train.delayed.LOSSES); "auto" = the joiner.policy default.
    loss: str = "auto"
    lr: float = 1e-3  # Adam step size of online fine-tuning (the optimiser state is resumed)
    weight_decay: float = 0.0
    batch_size: int = 512  # rows per micro-batch (one optimiser step)
    # "time": a batch is cut when full or max_wait_ms after its first row (any partitions);
    # "offset": batches are fixed offset windows [k*batch_size, (k+1)*batch_size) of one
    # partition, independent of polling and restarts (the deterministic mode).
    batch_cut: Literal["time", "offset"] = "time"
    max_wait_ms: int = 1000
    # Micro-batches waiting for the training thread; when full, the consumer pauses its
    # partitions (and keeps polling, so group membership survives slow steps).
    queue_batches: int = 4
    checkpoint_examples: int = 1_000_000  # checkpoint after this many examples...
    checkpoint_seconds: float = 60.0  # ...or this long after the previous checkpoint
    metrics_window: int = 10_000  # rolling metrics over the last N scored rows per task
    drift_delta: float = 0.002  # ADWIN confidence on the progressive logloss
    threads: int = 0  # torch intra-op threads; 0 = leave torch's default
    # CPU deterministic algorithms and 1 torch thread; with batch_cut = "offset" on one
    # partition a run's weights do not depend on where it was killed and restarted.
    deterministic: bool = False
    # gc.freeze() after start-up and higher GC thresholds: measured 0.97-1.00x (no gain: the
    # worker's heap stays small and short-lived; docs/benchmarks.md), so off by default
    gc_freeze: bool = False
    # `lt4rec worker status`: unhealthy when examples wait and the newest checkpoint is older
    stale_after_s: float = 300.0

    def __post_init__(self) -> None:
        if not self.group_id:
            raise ValueError("group_id must not be empty")
        if not self.loss:
            raise ValueError("loss must not be empty")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("lr must be > 0 and weight_decay >= 0")
        if self.batch_size < 1 or self.queue_batches < 1 or self.metrics_window < 1:
            raise ValueError("batch_size, queue_batches and metrics_window must be >= 1")
        if self.max_wait_ms < 0 or self.threads < 0:
            raise ValueError("max_wait_ms and threads must be >= 0")
        if self.checkpoint_examples < 1 or self.checkpoint_seconds <= 0:
            raise ValueError("checkpoint_examples must be >= 1 and checkpoint_seconds > 0")
        if not 0 < self.drift_delta < 1:
            raise ValueError("drift_delta must be in (0, 1)")
        if self.stale_after_s <= 0:
            raise ValueError("stale_after_s must be > 0")
