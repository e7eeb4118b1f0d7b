"""checkpoints: checkpoint format, store, registry and publishing."""

from checkpoints.format import (
    FORMAT_VERSION,
    Checkpoint,
    CorruptCheckpointError,
    load_checkpoint,
    save_checkpoint,
)

__all__ = [
    "FORMAT_VERSION",
    "Checkpoint",
    "CorruptCheckpointError",
    "load_checkpoint",
    "save_checkpoint",
]
