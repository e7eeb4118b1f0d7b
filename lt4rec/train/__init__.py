"""Training: the per-task masked optimiser, the training step and ``run_fit``.

``run_fit`` lives in :mod:`lt4rec.train.fit` (import it from there; it is not re-exported
here so that :mod:`lt4rec.pruning` can use the training step without an import cycle).
"""

from lt4rec.train.loop import (
    Predictions,
    make_optimizer,
    predict,
    step_options,
    task_losses,
    train_step,
)
from lt4rec.train.optim import TaskMaskedAdam

__all__ = [
    "Predictions",
    "TaskMaskedAdam",
    "make_optimizer",
    "predict",
    "step_options",
    "task_losses",
    "train_step",
]
