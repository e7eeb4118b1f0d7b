"""Metrics: exact AUC, logloss, GAUC, the multi-task evaluation report and rolling windows."""

from lt4rec.metrics.evaluate import evaluate_predictions
from lt4rec.metrics.ranking import auc, gauc, logloss, pr_auc
from lt4rec.metrics.rolling import RollingWindow

__all__ = ["RollingWindow", "auc", "evaluate_predictions", "gauc", "logloss", "pr_auc"]
