"""FNW: fake-negative weighting with the model's own predictions (policy ``fnw``).

Ktena et al. 2019, "Addressing delayed feedback for continuous training with neural networks
in CTR prediction" (RecSys), Section 3.2; reference implementation in
github.com/ThyrixYang/es_dfm (``src/loss.py``, ``fake_negative_weighted_loss``).

Under the ``fnw`` policy every impression is first seen as a negative and every positive
arrives later as a duplicate, so a target with true rate ``p(x)`` is observed at rate
``b(x) = p / (1 + p)``. Importance sampling from ``b`` to ``p`` gives, with ``p`` the
model's current prediction (no gradient flows through the weights)::

    w_pos(x) = p(y=1|x) / b(y=1|x) = 1 + p
    w_neg(x) = p(y=0|x) / b(y=0|x) = (1 - p) (1 + p)

``p`` is pCTR for the CTR target, pCVR for CVR and pCTR * pCVR for CTCVR, from one extra
forward pass per micro-batch. Row roles (which rows are first observations, duplicates or
uninformative) come from :mod:`lt4rec.train.feedback_rows`.
"""

from __future__ import annotations

import torch

from lt4rec.data.batch import Batch
from lt4rec.models.blocks import MultiTaskModel
from lt4rec.train.delayed import StreamMeta
from lt4rec.train.feedback_rows import SampleWeightLoss


@torch.no_grad()
def model_probs(model: MultiTaskModel, batch: Batch) -> dict[str, torch.Tensor]:
    """``{ctr, cvr, ctcvr: p [B]}`` of ``model`` in eval mode (its mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        logits = model(batch)
    finally:
        model.train(was_training)
    p_ctr = torch.sigmoid(logits["ctr"].float())
    p_cvr = torch.sigmoid(logits["cvr"].float())
    return {"ctr": p_ctr, "cvr": p_cvr, "ctcvr": p_ctr * p_cvr}


def fnw_weights(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(w_pos, w_neg) = (1 + p, (1 - p)(1 + p))`` for predicted rates ``p`` [B]."""
    return 1.0 + p, (1.0 - p) * (1.0 + p)


class FNW(SampleWeightLoss):
    """Fake-negative weighted loss: weights from the model's stop-gradient predictions."""

    name = "fnw"
    policy = "fnw"

    def pos_neg(
        self, model: MultiTaskModel, batch: Batch, meta: StreamMeta
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        probs = model_probs(model, batch)
        return {t: fnw_weights(probs[t]) for t in self.targets}
