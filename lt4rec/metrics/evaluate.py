"""The multi-task evaluation report: CTR, CVR (clicked rows) and CTCVR (all rows) metrics."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from lt4rec.metrics.ranking import auc, gauc, logloss


def evaluate_predictions(
    p_ctr: ArrayLike,
    p_cvr: ArrayLike,
    click: ArrayLike,
    conversion: ArrayLike,
    user: ArrayLike | None = None,
    prefix: str = "",
) -> dict[str, float]:
    """Metrics of predicted probabilities against labels (arrays of length N).

    ``cvr_*`` are computed on clicked rows only (CVR is defined given a click); ``ctcvr_*`` on
    all rows with pCTR * pCVR against click ∧ conversion; ``ctr_gauc`` needs ``user``.
    """
    pc = np.asarray(p_ctr, dtype=np.float64)
    pv = np.asarray(p_cvr, dtype=np.float64)
    c = np.asarray(click, dtype=np.float64) > 0.5
    v = np.asarray(conversion, dtype=np.float64) > 0.5
    y_ctcvr = c & v
    out = {
        "ctr_auc": auc(pc, c),
        "ctr_logloss": logloss(pc, c),
        "cvr_auc": auc(pv[c], v[c]),
        "cvr_logloss": logloss(pv[c], v[c]),
        "ctcvr_auc": auc(pc * pv, y_ctcvr),
        "ctcvr_logloss": logloss(pc * pv, y_ctcvr),
        "rows": float(pc.size),
        "clicks": float(c.sum()),
        "conversions": float(y_ctcvr.sum()),
    }
    if user is not None:
        out["ctr_gauc"] = gauc(pc, c, user)
    return {prefix + k: v for k, v in out.items()}


def oracle_metrics(
    p_click: ArrayLike, p_conversion: ArrayLike, click: ArrayLike, conversion: ArrayLike
) -> dict[str, float]:
    """AUCs of the simulator's true probabilities: the ceiling any model can reach."""
    pc = np.asarray(p_click, dtype=np.float64)
    pv = np.asarray(p_conversion, dtype=np.float64)
    c = np.asarray(click, dtype=np.float64) > 0.5
    v = np.asarray(conversion, dtype=np.float64) > 0.5
    return {
        "oracle_ctr_auc": auc(pc, c),
        "oracle_cvr_auc": auc(pv[c], v[c]),
        "oracle_ctcvr_auc": auc(pc * pv, c & v),
    }
