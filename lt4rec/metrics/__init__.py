"""Offline metrics: AUC, logloss, GAUC and the multi-task evaluation report."""

from lt4rec.metrics.evaluate import evaluate_predictions
from lt4rec.metrics.ranking import auc, gauc, logloss, pr_auc

__all__ = ["auc", "evaluate_predictions", "gauc", "logloss", "pr_auc"]
