"""The one typed configuration every lt4rec command reads (see :mod:`.loader`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lt4rec.config.checks import require_finite
from lt4rec.config.data import DataConfig, SimConfig
from lt4rec.config.feedback import FeedbackConfig
from lt4rec.config.joiner import ArchiveConfig, JoinerConfig, StoreConfig
from lt4rec.config.kafka import KafkaConfig, MetricsConfig, TopicsConfig
from lt4rec.config.loader import ConfigError, build, read, to_dict, to_toml
from lt4rec.config.model import ModelConfig, PruneConfig, TrainConfig
from lt4rec.config.profiles import with_profile
from lt4rec.config.publish import PublishConfig
from lt4rec.config.registry import RegistryConfig
from lt4rec.config.reprune import RepruneConfig, SchedulerConfig
from lt4rec.config.serve import ServeConfig
from lt4rec.config.worker import WorkerConfig


@dataclass(frozen=True)
class RunConfig:
    """The main job (``lt4rec run``): where it keeps its files and how it drives the live
    system (streamer.system.live). The ``demo_*`` values replace the daemons' production
    settings for a run of minutes: the scheduler's interval, the worker's online publishing
    interval, the label delay of the re-pruning window (0 is exact here: the replayed log is
    finite and the joiner closes every window at its end) and the gate's margin."""

    workdir: str = "runs/main"
    live: bool = True  # False: the in-process pipeline (join, then learn online), no daemons
    demo_reprune_interval_s: float = 300.0
    demo_online_every_s: float = 15.0
    demo_label_delay_s: int = 0
    # the re-pruning gate's AUC margin in the demo (production: reprune.gate_*_eps = 0.002):
    # on a replayed week the recent-window candidate and the fine-tuned model in service
    # differ by a few hundredths per task, and the demo exists to exercise publish + hot-swap
    demo_gate_eps: float = 0.05
    # ES-DFM vs Vanilla for the report: ops/bench/delayed_feedback.py (the streaming protocol
    # on the real joiner) on a simulator of this many impressions; 0 = skip
    delayed_feedback_impressions: int = 30_000
    sample_s: float = 1.0  # the watcher's sampling period (summary time series)
    progress_s: float = 5.0  # one progress line this often
    predict_clients: int = 2  # the bounded /predict load during the re-prune and swap
    join_idle_s: float = 8.0  # the joiner exits (flushing) after this long without input
    start_timeout_s: float = 180.0
    phase_timeout_s: float = 900.0
    settle_s: float = 3.0
    stop_grace_s: float = 60.0

    def __post_init__(self) -> None:
        require_finite(self)
        if min(self.sample_s, self.progress_s, self.join_idle_s, self.start_timeout_s,
               self.phase_timeout_s, self.stop_grace_s) <= 0:  # fmt: skip
            raise ValueError("run.* durations must be > 0")
        if self.settle_s < 0 or self.demo_reprune_interval_s < 0 or self.demo_online_every_s < 0:
            raise ValueError("run.settle_s and the demo intervals must be >= 0")
        if min(self.demo_label_delay_s, self.predict_clients, self.demo_gate_eps,
               self.delayed_feedback_impressions) < 0:  # fmt: skip
            raise ValueError(
                "run.demo_label_delay_s, demo_gate_eps, predict_clients and "
                "delayed_feedback_impressions must be >= 0"
            )


@dataclass(frozen=True)
class AppConfig:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    joiner: JoinerConfig = field(default_factory=JoinerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    reprune: RepruneConfig = field(default_factory=RepruneConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)


def load_app_config(path: Path | str | None = None, overrides: Sequence[str] = ()) -> AppConfig:
    """Read the effective configuration: defaults < the chosen model's tuned profile
    (:mod:`lt4rec.config.profiles`) < TOML file < ``--set`` overrides."""
    return build(AppConfig, with_profile(read(path, overrides), ModelConfig.name))


__all__ = [
    "AppConfig",
    "ArchiveConfig",
    "ConfigError",
    "DataConfig",
    "FeedbackConfig",
    "JoinerConfig",
    "KafkaConfig",
    "MetricsConfig",
    "ModelConfig",
    "PruneConfig",
    "PublishConfig",
    "RegistryConfig",
    "RepruneConfig",
    "RunConfig",
    "SchedulerConfig",
    "ServeConfig",
    "SimConfig",
    "StoreConfig",
    "TopicsConfig",
    "TrainConfig",
    "WorkerConfig",
    "load_app_config",
    "to_dict",
    "to_toml",
]
