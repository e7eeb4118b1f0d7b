"""checkpoints: checkpoint format, saving a fit, the version registry and publishing."""

from checkpoints.format import (
    FORMAT_VERSION,
    Checkpoint,
    CorruptCheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from checkpoints.publish import Notice, load_newest_good, publish, rollback, verify, verify_file
from checkpoints.registry import Publication, Registry, RegistryError, VersionInfo

__all__ = [
    "FORMAT_VERSION",
    "Checkpoint",
    "CorruptCheckpointError",
    "Notice",
    "Publication",
    "Registry",
    "RegistryError",
    "VersionInfo",
    "load_checkpoint",
    "load_newest_good",
    "publish",
    "rollback",
    "save_checkpoint",
    "verify",
    "verify_file",
]
