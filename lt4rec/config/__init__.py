"""The one typed configuration every lt4rec command reads (see :mod:`.loader`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lt4rec.config.data import DataConfig, SimConfig
from lt4rec.config.joiner import ArchiveConfig, JoinerConfig, StoreConfig
from lt4rec.config.kafka import KafkaConfig, MetricsConfig, TopicsConfig
from lt4rec.config.loader import ConfigError, build, read, to_dict, to_toml
from lt4rec.config.model import ModelConfig, PruneConfig, TrainConfig
from lt4rec.config.profiles import with_profile


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


def load_app_config(path: Path | str | None = None, overrides: Sequence[str] = ()) -> AppConfig:
    """Read the effective configuration: defaults < the chosen model's tuned profile
    (:mod:`lt4rec.config.profiles`) < TOML file < ``--set`` overrides."""
    return build(AppConfig, with_profile(read(path, overrides), ModelConfig.name))


__all__ = [
    "AppConfig",
    "ArchiveConfig",
    "ConfigError",
    "DataConfig",
    "JoinerConfig",
    "KafkaConfig",
    "MetricsConfig",
    "ModelConfig",
    "PruneConfig",
    "RunConfig",
    "SimConfig",
    "StoreConfig",
    "TopicsConfig",
    "TrainConfig",
    "load_app_config",
    "to_dict",
    "to_toml",
]
