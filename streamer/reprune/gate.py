"""The publishing gate of a re-pruned candidate: not worse than the model in service.

Both models are scored on the same held-out rows with the same metrics. The candidate passes
when neither AUC falls more than its margin below the baseline's (``reprune.gate_ctr_eps``,
``gate_cvr_eps``). Without a baseline (the first model) it must beat chance on both tasks.
A NaN AUC (a held-out split without positives) fails the gate: nothing is published blind.
"""

from __future__ import annotations

import math

from lt4rec.config.reprune import RepruneConfig


def gate(
    candidate: dict[str, float], baseline: dict[str, float] | None, cfg: RepruneConfig
) -> tuple[bool, str]:
    """``(passes, reason)`` of the candidate against the baseline (or chance)."""
    checks = (("ctr_auc", cfg.gate_ctr_eps), ("cvr_auc", cfg.gate_cvr_eps))
    reasons = []
    ok = True
    for key, eps in checks:
        got = candidate.get(key, math.nan)
        if math.isnan(got):
            return False, f"candidate {key} is undefined on the held-out rows"
        if baseline is None:
            passed = got > 0.5
            reasons.append(f"{key} {got:.4f} {'>' if passed else '<='} 0.5 (no model in service)")
        else:
            ref = baseline.get(key, math.nan)
            passed = math.isnan(ref) or got >= ref - eps
            reasons.append(f"{key} {got:.4f} vs {ref:.4f} (margin {eps})")
        ok = ok and passed
    return ok, ("gate passed: " if ok else "gate failed: ") + ", ".join(reasons)
