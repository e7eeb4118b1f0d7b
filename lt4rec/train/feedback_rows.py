"""What each row of the joiner's example stream tells each task, and the weighted-loss base.

The joiner's ``fnw`` and ``es_dfm`` policies (``docs/streamer.md``) emit, per impression, one
``fresh`` example (labels observed by ``ts + wait``; ``fnw``: nothing observed) and then one
``delayed_positive`` per label that arrived later: level 1 (click=1, conversion=0) at the
click, level 2 (click=1, conversion=1) at the conversion. A delayed-feedback method needs, for
each *target* it trains, the **role** of every row:

* ``FIRST`` — the target's first observation of this impression (label as observed then;
  a 0 may be a fake negative);
* ``DUP`` — a delayed positive duplicating an earlier ``FIRST`` row that said 0;
* ``SKIP`` — the row carries nothing new for the target (weight 0);
* ``FINAL`` — a ``final`` example: the true label (weight 1).

Roles by target (``docs/delayed_feedback.md``):

==========  =========  =====================  ====================
kind        ctr        cvr (clicked rows)     ctcvr (entire space)
==========  =========  =====================  ====================
fresh       FIRST      FIRST if click=1       FIRST
dp level 1  DUP        FIRST (conversion=0)   SKIP
dp level 2  SKIP       DUP                    DUP
final       FINAL      FINAL                  FINAL
==========  =========  =====================  ====================

A level-1 row is CVR's first observation because the CVR label only exists once the click
is known. A method then gives label-1 rows (FIRST or DUP) the weight ``w_pos(x)`` and
label-0 FIRST rows ``w_neg(x)`` (:class:`SampleWeightLoss`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from lt4rec.data.batch import Batch
from lt4rec.models.blocks import MultiTaskModel
from lt4rec.train.delayed import KIND_CODES, BaseLoss, StreamMeta, check_cvr_loss

FINAL, FIRST, DUP, SKIP = 0, 1, 2, 3
CvrLoss = Literal["clicked", "entire_space"]
TASK_OF = {"ctr": "ctr", "cvr": "cvr", "ctcvr": "cvr"}  # target -> train_step task


def targets_for(cvr_loss: str) -> tuple[str, str]:
    """The targets whose weights a step needs: CTR, and CVR or CTCVR (entire-space loss)."""
    check_cvr_loss(cvr_loss)
    return ("ctr", "cvr") if cvr_loss == "clicked" else ("ctr", "ctcvr")


@dataclass(frozen=True)
class TargetRows:
    """Role and stated label of every row of a batch for one target."""

    role: torch.Tensor  # [B] int64: FINAL / FIRST / DUP / SKIP
    label: torch.Tensor  # [B] float32 in {0, 1}: the target's label as the row states it

    def mask(self, role: int) -> torch.Tensor:
        return self.role == role  # [B] bool


def check_meta(batch: Batch, meta: StreamMeta) -> None:
    """Raise ``ValueError`` when ``meta`` does not describe ``batch`` row by row."""
    if len(meta) != len(batch):
        raise ValueError(f"stream meta has {len(meta)} rows, the batch {len(batch)}")
    bad = (meta.kind < 0) | (meta.kind >= len(KIND_CODES))
    if bool(bad.any()):
        raise ValueError(f"unknown example kind code {int(meta.kind[bad][0])}")


def target_rows(batch: Batch, meta: StreamMeta, target: str) -> TargetRows:
    """Roles of ``batch``'s rows for ``target`` (``ctr``, ``cvr`` or ``ctcvr``)."""
    check_meta(batch, meta)
    k = meta.kind.to(batch.click.device)
    final = k == KIND_CODES["final"]
    fresh = k == KIND_CODES["fresh"]
    dp = k == KIND_CODES["delayed_positive"]
    conv = batch.conversion > 0
    clicked = batch.click > 0
    role = torch.full_like(k, SKIP)
    if target == "ctr":
        label = batch.click
        role[fresh] = FIRST
        role[dp & ~conv] = DUP
    elif target == "cvr":
        label = batch.conversion * batch.click
        role[(fresh & clicked) | (dp & ~conv)] = FIRST
        role[dp & conv] = DUP
    elif target == "ctcvr":
        label = batch.conversion * batch.click
        role[fresh] = FIRST
        role[dp & conv] = DUP
    else:
        raise ValueError(f"unknown target {target!r}; known: {', '.join(TASK_OF)}")
    role[final] = FINAL
    return TargetRows(role=role, label=label)


def combine(rows: TargetRows, w_pos: torch.Tensor, w_neg: torch.Tensor) -> torch.Tensor:
    """Per-row weights [B]: ``w_pos`` on label-1 rows, ``w_neg`` on label-0 FIRST rows,
    1 on FINAL rows, 0 on SKIP rows (``w_pos`` / ``w_neg``: [B] or scalars)."""
    w = torch.where(rows.label > 0, w_pos, w_neg).to(torch.float32).expand_as(rows.label)
    w = w.clone()
    w[rows.mask(FINAL)] = 1.0
    w[rows.mask(SKIP)] = 0.0
    return w


class SampleWeightLoss(BaseLoss):
    """Base of the losses that weight rows by role: subclasses give ``w_pos`` / ``w_neg``.

    ``cvr_loss`` (the worker's ``train.cvr_loss``) decides whether the ``cvr`` weights are
    for CVR on clicked rows or for CTCVR on all rows.
    """

    def __init__(self, cvr_loss: CvrLoss = "clicked") -> None:
        super().__init__(cvr_loss)
        self.targets = targets_for(cvr_loss)

    def pos_neg(
        self, model: MultiTaskModel, batch: Batch, meta: StreamMeta
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{target: (w_pos [B], w_neg [B])}`` for every target in ``self.targets``."""
        raise NotImplementedError

    def weights(
        self, model: MultiTaskModel, batch: Batch, meta: StreamMeta
    ) -> dict[str, torch.Tensor] | None:
        pn = self.pos_neg(model, batch, meta)
        return {
            TASK_OF[t]: combine(target_rows(batch, meta, t), *pn[t]).detach() for t in self.targets
        }


class Vanilla(SampleWeightLoss):
    """No correction: every informative row weighs 1 (fake negatives stay negatives).

    The baseline of the ES-DFM paper: trained on the ``es_dfm`` stream as it is, except that
    rows carrying nothing new for a task (a CTR duplicate of a known click) weigh 0.
    """

    name = "vanilla"
    policy = "es_dfm"

    def pos_neg(
        self, model: MultiTaskModel, batch: Batch, meta: StreamMeta
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        one = torch.ones(len(batch), device=batch.click.device)
        return {t: (one, one) for t in self.targets}
