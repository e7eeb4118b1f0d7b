"""Configuration of the model (``[model]``), pruning (``[prune]``) and training (``[train]``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lt4rec.config.checks import check_device, require_finite

ModelName = Literal[
    "single",
    "shared_bottom",
    "esmm",
    "mmoe",
    "ple",
    "cross_stitch",
    "aitm",
    "escm2",
    "sparse_sharing",
]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture: embeddings -> bottom -> per-task towers, returning ``{task: logits}``.

    ``profile``: ``tuned`` applies the model's tuned profile (``lt4rec/config/profiles.toml``)
    under the TOML file and ``--set`` overrides; ``none`` uses the plain defaults below.
    """

    name: ModelName = "sparse_sharing"
    profile: Literal["tuned", "none"] = "tuned"
    embedding_dim: int = 16
    # Between the embeddings and the MLP: "dot" adds DLRM's pairwise dot products of the
    # field embeddings (lt4rec.models.interaction), for every model.
    interaction: Literal["none", "dot"] = "dot"
    bottom: tuple[int, ...] = (256, 128)  # over-parameterised base for sparse sharing
    tower: tuple[int, ...] = (64,)
    experts: int = 4  # mmoe / ple
    expert_hidden: tuple[int, ...] = (128,)
    dropout: float = 0.0
    # sparse_sharing: "shared" = the output layer is part of the pruned shared base network;
    # "per_task" = each task has its own (unpruned) output layer, as in Sun et al. (2020).
    output_layer: Literal["shared", "per_task"] = "shared"
    # The counterfactual CVR objective (escm2, or train.cvr_loss = "counterfactual"):
    # CTR loss + ips_weight * IPS-weighted CVR risk + ctcvr_weight * CTCVR loss, with
    # propensities pCTR (no gradient) clipped below at min_propensity.
    ips_weight: float = 1.0
    ctcvr_weight: float = 1.0
    min_propensity: float = 0.02

    def __post_init__(self) -> None:
        require_finite(self)
        if self.embedding_dim < 1 or self.experts < 1:
            raise ValueError("embedding_dim and experts must be >= 1")
        if any(h < 1 for h in (*self.bottom, *self.tower, *self.expert_hidden)):
            raise ValueError("layer widths must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        if self.ips_weight < 0 or self.ctcvr_weight < 0:
            raise ValueError("ips_weight and ctcvr_weight must be >= 0")
        if not 0 < self.min_propensity <= 1:
            raise ValueError("min_propensity must be in (0, 1]")


# Model keys added after checkpoints were first written, with the value a stored model
# config that lacks them meant (read by the checkpoint loader: an older checkpoint rebuilds
# exactly the network it was trained as).
LEGACY_MODEL_KEYS: dict[str, object] = {"interaction": "none"}


@dataclass(frozen=True)
class PruneConfig:
    """Iterative magnitude pruning with rewinding (lottery tickets), one mask per task."""

    rounds: int = 2  # 2 rounds at rate 0.46 -> hidden density 0.54^2 = 0.29 <= max_density
    rate: float = 0.46  # fraction of the remaining weights removed per round
    scope: Literal["global", "layer"] = "layer"
    prune_embeddings: bool = False  # prune() supports it; sparse_sharing keeps shared tables
    rewind: Literal["init", "step"] = "step"
    # with rewind = "step": weights are reset to step k of the dense round,
    # k = rewind_fraction * steps per round, or k = rewind_step when rewind_fraction is None
    # (late rewinding: a larger k). k is capped at the round's last step; the k used is
    # logged and reported (``pruning.<task>.rewind_step`` in the fit metrics).
    rewind_step: int = 200
    rewind_fraction: float | None = 0.25
    select: Literal["best_valid", "last"] = "best_valid"  # masks are chosen on validation data
    max_density: float = 0.3  # best_valid only considers rounds whose MLP density is <= this
    output_rate_factor: float = 0.5  # the output layer is pruned at rate * factor per round
    # Each pruning round trains on this many epochs of (shuffled) training data (a fraction,
    # or more than 1), so a task's search costs about (rounds + 1) * fraction epochs. It is
    # independent of train.epochs (the length of joint training).
    round_fraction: float = 0.2
    # CVR rounds only run the clicked rows (~CTR of every batch) through the network, so
    # they are ~1/CTR times cheaper per batch and can afford a larger fraction of the data.
    cvr_round_fraction: float = 1.0
    # Rounds of the CVR search (None: ``rounds``).
    cvr_rounds: int | None = None
    # CVR loss of the ticket search: "train" = train.cvr_loss (an all-rows loss also trains
    # the dense CTR view for pCTR, as costly as a CTR round), "clicked" = clicked rows only.
    search_cvr_loss: Literal["train", "clicked"] = "train"
    # Joint training starts from the initial weights ("init") or from the tickets' merged
    # rewind-step states ("rewind": the ticket is the mask WITH its step-k weights).
    # (chosen on validation, 1M simulator, seeds 0-2: valid CTR AUC +0.004, CVR +0.001)
    joint_start: Literal["init", "rewind"] = "rewind"
    # Per-round pruning rate of the CVR ticket (None: ``rate``); a sparser CVR ticket
    # regularises the label-poor task: 0.6 -> CVR density 0.4^2 = 0.16 after 2 rounds
    # (valid CVR AUC +0.0026 over ``rate`` on the 1M simulator, seeds 0-2; 0.7 / 0.8 no better).
    cvr_rate: float | None = 0.6

    def __post_init__(self) -> None:
        require_finite(self)
        if self.rounds < 0:
            raise ValueError("rounds must be >= 0")
        if not 0 < self.rate < 1:
            raise ValueError("rate must be in (0, 1)")
        if self.cvr_rate is not None and not 0 < self.cvr_rate < 1:
            raise ValueError("cvr_rate must be in (0, 1)")
        if self.rewind_step < 0:
            raise ValueError("rewind_step must be >= 0")
        if not 0 < self.max_density <= 1:
            raise ValueError("max_density must be in (0, 1]")
        if not 0 <= self.output_rate_factor <= 1:
            raise ValueError("output_rate_factor must be in [0, 1]")
        if not 0 < self.round_fraction <= 10 or not 0 < self.cvr_round_fraction <= 10:
            raise ValueError("round_fraction and cvr_round_fraction must be in (0, 10]")
        if self.rewind_fraction is not None and not 0 <= self.rewind_fraction < 1:
            raise ValueError("rewind_fraction must be in [0, 1)")
        if self.cvr_rounds is not None and self.cvr_rounds < 0:
            raise ValueError("cvr_rounds must be >= 0")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of every model (and of each pruning round)."""

    epochs: int = 1
    lr: float = 1e-2  # Adam; tuned for one epoch of ~100k-1M impressions at batch 2048
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op threads; 0 = leave torch's default
    cvr_loss: Literal["clicked", "entire_space", "counterfactual"] = "clicked"
    # CVR's share of each update: loss weight where both tasks meet in one Adam state,
    # step-size multiplier of the parameters only CVR trains (see lt4rec.train.loop).
    cvr_weight: float = 1.0
    # Row-wise L2 on the embedding rows each batch touches (gradient l2 * row).
    embedding_l2: float = 0.0
    # Embedding tables train during the first embedding_epochs epochs of joint training only
    # (0 = every epoch); later epochs train the layers after them. Hashed id embeddings
    # overfit from the second pass on (the "one-epoch" phenomenon of CTR models).
    embedding_epochs: int = 0
    # Learning rate: linear warm-up over warmup_steps, then none / cosine / linear decay to
    # 0 at the end of the planned epochs (joint training; pruning rounds use a constant lr).
    warmup_steps: int = 0
    lr_decay: Literal["none", "cosine", "linear"] = "none"
    # Validation during joint training: every eval_every steps (0 = once per epoch) and at
    # the end of every epoch; the state with the best ``objective`` is kept.
    eval_every: int = 0
    objective: Literal["auc_sum", "cvr_auc", "ctr_auc", "ctcvr_auc"] = "auc_sum"
    # Early stopping: stop after this many validations without a better objective; 0 = run
    # every epoch. The best state is kept either way.
    patience: int = 0

    def __post_init__(self) -> None:
        require_finite(self)
        check_device(self.device)
        if self.weight_decay < 0:
            raise ValueError("weight_decay must be >= 0")
        if min(self.patience, self.eval_every, self.warmup_steps, self.embedding_epochs) < 0:
            raise ValueError("patience, eval_every, warmup_steps, embedding_epochs must be >= 0")
        if self.cvr_weight < 0 or self.embedding_l2 < 0:
            raise ValueError("cvr_weight and embedding_l2 must be >= 0")
        if self.epochs < 1:
            raise ValueError("epochs must be >= 1")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if self.threads < 0:
            raise ValueError("threads must be >= 0")
