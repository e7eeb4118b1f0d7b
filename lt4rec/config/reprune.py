"""Configuration of the re-pruning job (``[reprune]``) and its scheduler (``[scheduler]``)."""

from __future__ import annotations

from dataclasses import dataclass

from lt4rec.config.checks import require_finite


@dataclass(frozen=True)
class RepruneConfig:
    """Daily lottery-ticket re-pruning on a window of the archive, gated on held-out data.

    The window ends ``label_delay_s`` before the archive's completeness cut (labels of older
    impressions are final; ``None`` = the joiner's click + attribution windows, exact) and is
    split by impression time: train | valid (ticket and epoch selection) | held-out (the
    gate: the candidate against the model in service, same rows, same metrics).
    """

    window_days: float = 7.0
    valid_hours: float = 6.0
    holdout_hours: float = 6.0
    label_delay_s: int | None = None
    # the automatic window end is floored to this (two schedulers agree on the window)
    end_granularity_s: int = 3600
    # gate: publish only if the candidate is not worse by more than these AUC margins
    gate_ctr_eps: float = 0.002
    gate_cvr_eps: float = 0.002
    min_train_rows: int = 1000
    min_holdout_rows: int = 200
    # feature spec JSON for the first model (later runs use the published model's spec)
    spec: str = ""
    shuffle_rows: int = 65_536  # rows held for shuffling: memory does not grow with the window
    read_rows: int = 16_384
    publish: bool = True  # False: register the candidate (gate verdict recorded), never publish

    def __post_init__(self) -> None:
        require_finite(self)
        if not self.window_days > 0:
            raise ValueError("window_days must be > 0")
        if self.valid_hours <= 0 or self.holdout_hours <= 0:
            raise ValueError("valid_hours and holdout_hours must be > 0")
        if (self.valid_hours + self.holdout_hours) / 24 >= self.window_days:
            raise ValueError("valid_hours + holdout_hours must be shorter than the window")
        if self.label_delay_s is not None and self.label_delay_s < 0:
            raise ValueError("label_delay_s must be >= 0")
        if self.end_granularity_s < 1:
            raise ValueError("end_granularity_s must be >= 1")
        if self.gate_ctr_eps < 0 or self.gate_cvr_eps < 0:
            raise ValueError("gate_ctr_eps and gate_cvr_eps must be >= 0")
        if self.min_train_rows < 1 or self.min_holdout_rows < 1:
            raise ValueError("min_train_rows and min_holdout_rows must be >= 1")
        if self.shuffle_rows < 1 or self.read_rows < 1:
            raise ValueError("shuffle_rows and read_rows must be >= 1")


@dataclass(frozen=True)
class SchedulerConfig:
    """When the re-pruning job runs (APScheduler 3.x), and how runs exclude each other.

    ``cron`` (UTC, crontab fields) is the default trigger; ``interval_s > 0`` replaces it (demos).
    ``misfire_grace_s``: a run that is late by less than this still runs (APScheduler's 3.x
    default of 1 s silently skips a daily job delayed by a busy or restarted process).
    ``coalesce``: several missed runs become one. ``max_instances = 1``: never two runs of the
    job in one scheduler; across schedulers a database lease (``lease_s``) plus one row per
    (job, window end) make the run happen once.
    """

    cron: str = "0 3 * * *"
    interval_s: float = 0.0
    misfire_grace_s: int = 6 * 3600
    coalesce: bool = True
    max_instances: int = 1
    lease_s: float = 3 * 3600.0  # longer than any run; a dead runner's lease expires
    drift_trigger: bool = True  # a drift alarm of the worker schedules an early run
    drift_min_interval_s: float = 6 * 3600.0  # rate limit of drift-triggered runs

    def __post_init__(self) -> None:
        require_finite(self)
        if len(self.cron.split()) != 5:
            raise ValueError(f"cron {self.cron!r} must have 5 fields (min hour day month dow)")
        if self.interval_s < 0 or self.misfire_grace_s < 1:
            raise ValueError("interval_s must be >= 0 and misfire_grace_s >= 1")
        if self.max_instances < 1 or self.lease_s <= 0 or self.drift_min_interval_s < 0:
            raise ValueError("max_instances >= 1, lease_s > 0, drift_min_interval_s >= 0")
