"""Configuration of the delayed-feedback losses' auxiliary heads (``[feedback]``).

Only the ``es_dfm`` loss uses it (see ``docs/delayed_feedback.md``); the waiting window
``c`` of its weights is the joiner's ``joiner.es_dfm_wait_s``, stored with the heads.
"""

from __future__ import annotations

from dataclasses import dataclass

from lt4rec.config.checks import require_finite


@dataclass(frozen=True)
class FeedbackConfig:
    """ES-DFM heads: architecture, pre-training on the archive, optional online updates."""

    heads_embedding_dim: int = 8
    heads_hidden: tuple[int, ...] = (64, 32)
    # pre-training passes over the archive rows: more than one overfits the hashed ids
    # (simulator, 100k rows: held-out dp AUC 0.67 after 1 epoch, 0.57 after 2)
    heads_epochs: int = 1
    heads_batch_size: int = 1024
    heads_lr: float = 1e-2  # Adam, pre-training
    heads_seed: int = 0
    # False: the pre-trained heads stay frozen (as the reference code does). True: they are
    # also updated online from the stream's corrections (FNW-style, see es_dfm.py).
    heads_online: bool = False
    heads_online_lr: float = 1e-3

    def __post_init__(self) -> None:
        require_finite(self)
        if self.heads_embedding_dim < 1 or any(h < 1 for h in self.heads_hidden):
            raise ValueError("heads_embedding_dim and heads_hidden widths must be >= 1")
        if self.heads_epochs < 1 or self.heads_batch_size < 1:
            raise ValueError("heads_epochs and heads_batch_size must be >= 1")
        if self.heads_lr <= 0 or self.heads_online_lr <= 0:
            raise ValueError("heads_lr and heads_online_lr must be > 0")
