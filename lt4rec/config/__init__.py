"""The one typed configuration every lt4rec command reads (see :mod:`.loader`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
    """Where the main job (``lt4rec run``) keeps its files."""

    workdir: str = "runs/main"


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
