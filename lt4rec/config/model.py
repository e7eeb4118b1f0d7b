"""Configuration of the model (``[model]``), pruning (``[prune]``) and training (``[train]``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ModelName = Literal[
    "single", "shared_bottom", "esmm", "mmoe", "ple", "cross_stitch", "sparse_sharing"
]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture: embeddings -> bottom -> per-task towers, returning ``{task: logits}``."""

    name: ModelName = "sparse_sharing"
    embedding_dim: int = 16
    bottom: tuple[int, ...] = (256, 128)  # over-parameterised base for sparse sharing
    tower: tuple[int, ...] = (64,)
    experts: int = 4  # mmoe / ple
    expert_hidden: tuple[int, ...] = (128,)
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.embedding_dim < 1 or self.experts < 1:
            raise ValueError("embedding_dim and experts must be >= 1")
        if any(h < 1 for h in (*self.bottom, *self.tower, *self.expert_hidden)):
            raise ValueError("layer widths must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")


@dataclass(frozen=True)
class PruneConfig:
    """Iterative magnitude pruning with rewinding (lottery tickets), one mask per task."""

    rounds: int = 5
    rate: float = 0.25  # fraction of the remaining weights removed per round
    scope: Literal["global", "layer"] = "layer"
    prune_embeddings: bool = False
    rewind: Literal["init", "step"] = "step"
    rewind_step: int = 200  # with rewind = "step": weights are reset to step k of training
    select: Literal["best_valid", "last"] = "best_valid"  # masks are chosen on validation data

    def __post_init__(self) -> None:
        if self.rounds < 0:
            raise ValueError("rounds must be >= 0")
        if not 0 < self.rate < 1:
            raise ValueError("rate must be in (0, 1)")
        if self.rewind_step < 0:
            raise ValueError("rewind_step must be >= 0")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of every model (and of each pruning round)."""

    epochs: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op threads; 0 = leave torch's default
    cvr_loss: Literal["clicked", "entire_space"] = "clicked"
    cvr_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError("epochs must be >= 1")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if self.threads < 0:
            raise ValueError("threads must be >= 0")
