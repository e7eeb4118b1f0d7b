"""Delayed-feedback losses of the online worker: the interface and the plain (``bce``) loss.

The joiner's label policy decides what the example stream means (``docs/streamer.md``):

* ``wait_full`` -> one ``final`` example per impression with its final labels: plain BCE;
* ``fnw`` -> a ``fresh`` (all-negative) example at once, then ``delayed_positive`` duplicates
  when a click / conversion arrives: fake-negative weighting (Ktena et al. 2019);
* ``es_dfm`` -> a ``fresh`` example after a short wait with the labels observed by then, then
  ``delayed_positive`` corrections: elapsed-time sampling with importance weights from
  auxiliary heads (Yang et al. 2021).

Implementations: :class:`PlainBCE` here, :class:`~lt4rec.train.fnw.FNW`,
:class:`~lt4rec.train.es_dfm.ESDFM` and the uncorrected baseline
:class:`~lt4rec.train.feedback_rows.Vanilla` (which rows weigh what per task:
:mod:`lt4rec.train.feedback_rows`; formulas: ``docs/delayed_feedback.md``).

A :class:`FeedbackLoss` turns a micro-batch (plus the stream metadata of its rows) into
per-row sample weights per task, which :func:`lt4rec.train.loop.train_step` applies. The
worker checks ``loss.policy`` against the policy the examples were emitted under and refuses
to start on a mismatch. Auxiliary state (ES-DFM heads) travels in checkpoints through
:meth:`FeedbackLoss.state_dict`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from lt4rec.data.batch import Batch
from lt4rec.models.blocks import MultiTaskModel

KIND_CODES = {"final": 0, "fresh": 1, "delayed_positive": 2}


@dataclass(frozen=True)
class StreamMeta:
    """Per-row stream metadata of a micro-batch (B rows, same order as the Batch)."""

    kind: torch.Tensor  # [B] int64, KIND_CODES of the example kind
    elapsed_s: torch.Tensor  # [B] float32, (label_ts - ts) / 1000: time the label waited

    def __len__(self) -> int:
        return int(self.kind.shape[0])


class FeedbackLoss(Protocol):
    """Per-row sample weights of one delayed-feedback method."""

    name: str  # the `worker.loss` value
    policy: str  # the joiner.policy whose examples this loss expects

    def weights(
        self, model: MultiTaskModel, batch: Batch, meta: StreamMeta
    ) -> dict[str, torch.Tensor] | None:
        """``{task: w[B]}`` for :func:`train_step`, or None for unweighted BCE."""

    def update(self, model: MultiTaskModel, batch: Batch, meta: StreamMeta) -> None:
        """Learn from the batch after the model's step (e.g. auxiliary heads); may do nothing."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors to checkpoint (empty when the loss has no state)."""

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None: ...


CVR_LOSSES = ("clicked", "entire_space")


def check_cvr_loss(cvr_loss: str) -> None:
    """Raise ``ValueError`` unless ``cvr_loss`` is a ``train.cvr_loss`` value."""
    if cvr_loss not in CVR_LOSSES:
        raise ValueError(f"cvr_loss must be 'clicked' or 'entire_space', got {cvr_loss!r}")


class BaseLoss:
    """Defaults of a loss: no state (``update`` does nothing, ``state_dict`` is empty).

    ``cvr_loss`` is the ``train.cvr_loss`` the worker steps with (CVR on clicked rows, or
    CTCVR on all rows), which decides what a loss's ``cvr`` weights are for.
    """

    name = ""
    policy = ""

    def __init__(self, cvr_loss: str = "clicked") -> None:
        check_cvr_loss(cvr_loss)
        self.cvr_loss = cvr_loss

    def update(self, model: MultiTaskModel, batch: Batch, meta: StreamMeta) -> None:
        return None

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        if state:
            raise ValueError(f"the {self.name} loss has no state, got {sorted(state)}")


class PlainBCE(BaseLoss):
    """``wait_full``: final labels only, every row weighs 1."""

    name = "bce"
    policy = "wait_full"

    def weights(
        self, model: MultiTaskModel, batch: Batch, meta: StreamMeta
    ) -> dict[str, torch.Tensor] | None:
        return None


def _fnw(**options: Any) -> FeedbackLoss:
    from lt4rec.train.fnw import FNW

    return FNW(**options)


def _es_dfm(**options: Any) -> FeedbackLoss:
    from lt4rec.train.es_dfm import ESDFM

    return ESDFM(**options)


def _vanilla(**options: Any) -> FeedbackLoss:
    from lt4rec.train.feedback_rows import Vanilla

    return Vanilla(**options)


# name -> factory(**options). Every loss takes ``cvr_loss`` ("clicked" | "entire_space",
# the train.cvr_loss the worker steps with, default "clicked"); es_dfm also needs
# ``heads`` (pre-trained DelayHeads), ``wait_s`` (joiner.es_dfm_wait_s) and takes ``cfg``
# (FeedbackConfig). ``vanilla`` is the uncorrected baseline on the es_dfm stream.
LOSSES: dict[str, Callable[..., FeedbackLoss]] = {
    "bce": PlainBCE,
    "fnw": _fnw,
    "es_dfm": _es_dfm,
    "vanilla": _vanilla,
}
POLICY_LOSS = {"wait_full": "bce", "fnw": "fnw", "es_dfm": "es_dfm"}  # the default loss per policy


def make_feedback_loss(name: str, **options: Any) -> FeedbackLoss:
    """The loss named ``name`` (see :data:`LOSSES` for the options each one takes)."""
    factory = LOSSES.get(name)
    if factory is None:
        raise ValueError(f"unknown delayed-feedback loss {name!r}; known: {', '.join(LOSSES)}")
    return factory(**options)
