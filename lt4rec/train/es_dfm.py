"""ES-DFM: elapsed-time sampling importance weights from auxiliary heads (policy ``es_dfm``).

Yang et al. 2021, "Capturing Delayed Feedback in Conversion Rate Prediction via Elapsed-Time
Sampling" (AAAI), eq. 7-10; reference github.com/ThyrixYang/es_dfm (``src/loss.py``,
``delay_tn_importance_weight_loss``). The ``es_dfm`` stream shows a target with true rate
``p(x)`` after the wait ``c``; positives seen later are duplicated, so with
``p_dp(x) = P(delayed positive | x)`` the observed distribution is
``q(y=1|x) = p / (1 + p_dp)`` and ``q(y=0|x) = (1 - p + p_dp) / (1 + p_dp)``. Importance
weights ``p / q``::

    w_pos(x) = 1 + p_dp(x)
    w_neg(x) = (1 + p_dp(x)) * p_tn(x),   p_tn(x) = P(true negative | observed negative, x)

both from :class:`~lt4rec.models.delay_heads.DelayHeads` (no gradient to the model), per
target (CTR, CVR on clicked rows or CTCVR) with the row roles of
:mod:`lt4rec.train.feedback_rows`.

**Heads.** Pre-trained on the archive (:func:`lt4rec.train.heads_fit.pretrain_heads`) and
frozen, as the reference does. With ``FeedbackConfig.heads_online`` they are also updated
after every step from what the stream delivers. The stream never says "this negative is
final", but it has the FNW structure for the heads' own labels: every FIRST row is a
provisional "not delayed" and each DUP row its later positive duplicate, so the heads learn
with FNW weights from their own predictions (:func:`lt4rec.train.fnw.fnw_weights`):

* dp head: FIRST rows label 0, weight ``(1 - q)(1 + q)``; DUP rows label 1, weight ``1 + q``
  (``q`` = current P(dp));
* tn head (on observed negatives, ``f = 1 - P(tn)`` is P(fake negative)): label-0 FIRST
  rows are tn = 1, weight ``(1 - f)(1 + f)``; DUP rows tn = 0, weight ``1 + f``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from lt4rec.config.feedback import FeedbackConfig
from lt4rec.data.batch import Batch
from lt4rec.models.blocks import MultiTaskModel
from lt4rec.models.delay_heads import DelayHeads
from lt4rec.train.delayed import StreamMeta
from lt4rec.train.feedback_rows import DUP, FIRST, CvrLoss, SampleWeightLoss, target_rows
from lt4rec.train.fnw import fnw_weights
from lt4rec.train.heads_fit import heads_step, masked_bce
from lt4rec.train.optim import TaskMaskedAdam


def es_dfm_weights(p_dp: torch.Tensor, p_tn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(w_pos, w_neg) = (1 + p_dp, (1 + p_dp) * p_tn)`` for head probabilities [B]."""
    return 1.0 + p_dp, (1.0 + p_dp) * p_tn


class ESDFM(SampleWeightLoss):
    """Importance-weighted loss with (frozen or online-updated) delay heads.

    ``wait_s`` is the joiner's ``es_dfm_wait_s`` the heads were trained for; it travels in
    :meth:`state_dict` and a state trained for another wait is refused. ``heads`` must be on
    the device of the batches (``heads.to(device)`` before building the loss).
    """

    name = "es_dfm"
    policy = "es_dfm"

    def __init__(
        self,
        heads: DelayHeads | None = None,
        wait_s: int | None = None,
        cfg: FeedbackConfig | None = None,
        cvr_loss: CvrLoss = "clicked",
    ) -> None:
        super().__init__(cvr_loss)
        if heads is None or wait_s is None:
            raise ValueError(
                "the es_dfm loss needs pre-trained heads and their wait: "
                "make_feedback_loss('es_dfm', heads=pretrain_heads(...), wait_s=...)"
            )
        missing = [t for t in self.targets if t not in heads.targets]
        if missing:
            raise ValueError(f"heads have targets {heads.targets}, the loss needs {missing}")
        self.heads = heads
        self.wait_s = int(wait_s)
        self.cfg = cfg or FeedbackConfig()
        self.online = self.cfg.heads_online
        self.heads.requires_grad_(self.online)
        self.heads.eval()
        params = dict(self.heads.named_parameters())
        self.opt = TaskMaskedAdam(params, lr=self.cfg.heads_online_lr) if self.online else None

    def pos_neg(
        self, model: MultiTaskModel, batch: Batch, meta: StreamMeta
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        p = self.heads.probs(batch)
        return {t: es_dfm_weights(p[f"{t}_dp"], p[f"{t}_tn"]) for t in self.targets}

    def update(self, model: MultiTaskModel, batch: Batch, meta: StreamMeta) -> None:
        """Online heads only: one FNW-weighted step on the batch's corrections."""
        if self.opt is None:
            return
        rows = {t: target_rows(batch, meta, t) for t in self.targets}
        p = self.heads.probs(batch)

        def loss_of(z: dict[str, torch.Tensor]) -> torch.Tensor:
            total = z[self.heads.outputs[0]].sum() * 0.0
            for t, r in rows.items():
                first, dup = r.mask(FIRST).float(), r.mask(DUP).float()
                neg = first * (r.label <= 0).float()
                dp_pos, dp_neg = fnw_weights(p[f"{t}_dp"])
                fake_pos, fake_neg = fnw_weights(1.0 - p[f"{t}_tn"])
                zero, one = torch.zeros_like(first), torch.ones_like(first)
                total = total + masked_bce(z[f"{t}_dp"], dup, dup * dp_pos + first * dp_neg)
                y_tn = torch.where(dup > 0, zero, one)
                total = total + masked_bce(z[f"{t}_tn"], y_tn, dup * fake_pos + neg * fake_neg)
            return total

        heads_step(self.heads, self.opt, batch, loss_of)
        self.heads.eval()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """CPU copies: ``heads/<param>``, ``wait_s`` and (online) ``heads_opt/<key>``."""
        out = {f"heads/{k}": v.detach().cpu().clone() for k, v in self.heads.state_dict().items()}
        out["wait_s"] = torch.tensor(self.wait_s, dtype=torch.int64)
        if self.opt is not None:
            out.update({f"heads_opt/{k}": v.cpu() for k, v in self.opt.state_dict().items()})
        return out

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        if "wait_s" not in state:
            raise ValueError("es_dfm state has no 'wait_s' (not an es_dfm loss state?)")
        wait = int(state["wait_s"])
        if wait != self.wait_s:
            raise ValueError(f"es_dfm heads were trained for wait {wait}s, not {self.wait_s}s")
        heads = {k[6:]: v for k, v in state.items() if k.startswith("heads/")}
        self.heads.load_state_dict(heads)  # strict: a foreign state fails here
        unknown = [k for k in state if not k.startswith(("heads/", "heads_opt/", "wait_s"))]
        if unknown:
            raise ValueError(f"unknown es_dfm state keys {unknown}")
        if self.opt is not None:
            dev = next(self.heads.parameters()).device
            opt = {k[10:]: v for k, v in state.items() if k.startswith("heads_opt/")}
            self.opt.load_state_dict(
                {k: v if k.endswith("/step") else v.to(dev) for k, v in opt.items()}
            )
