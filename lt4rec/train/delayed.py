"""Delayed-feedback losses of the online worker: the interface and the plain (``bce``) loss.

The joiner's label policy decides what the example stream means (``docs/streamer.md``):

* ``wait_full`` -> one ``final`` example per impression with its final labels: plain BCE;
* ``fnw`` -> a ``fresh`` (all-negative) example at once, then ``delayed_positive`` duplicates
  when a click / conversion arrives: fake-negative weighting (Ktena et al. 2019);
* ``es_dfm`` -> a ``fresh`` example after a short wait with the labels observed by then, then
  ``delayed_positive`` corrections: elapsed-time sampling with importance weights from
  auxiliary heads (Yang et al. 2021).

A :class:`FeedbackLoss` turns a micro-batch (plus the stream metadata of its rows) into
per-row sample weights per task, which :func:`lt4rec.train.loop.train_step` applies. The
worker checks ``loss.policy`` against the policy the examples were emitted under and refuses
to start on a mismatch. Auxiliary state (ES-DFM heads) travels in checkpoints through
:meth:`FeedbackLoss.state_dict`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

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


class PlainBCE:
    """``wait_full``: final labels only, every row weighs 1."""

    name = "bce"
    policy = "wait_full"

    def weights(
        self, model: MultiTaskModel, batch: Batch, meta: StreamMeta
    ) -> dict[str, torch.Tensor] | None:
        return None

    def update(self, model: MultiTaskModel, batch: Batch, meta: StreamMeta) -> None:
        return None

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        if state:
            raise ValueError(f"the bce loss has no state, got {sorted(state)}")


LOSSES: dict[str, Callable[[], FeedbackLoss]] = {"bce": PlainBCE}
POLICY_LOSS = {"wait_full": "bce", "fnw": "fnw", "es_dfm": "es_dfm"}  # the default loss per policy


def make_feedback_loss(name: str) -> FeedbackLoss:
    """The loss named ``name`` (``bce``, and those registered in :data:`LOSSES`)."""
    factory = LOSSES.get(name)
    if factory is None:
        raise ValueError(f"unknown delayed-feedback loss {name!r}; known: {', '.join(LOSSES)}")
    return factory()
