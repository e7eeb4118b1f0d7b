"""Video-feed traffic simulator with known ground truth (see :mod:`.core`)."""

from lt4rec.data.simulator.columns import DENSE, MULTI, SPARSE, TRUTH_COLUMNS, sim_spec
from lt4rec.data.simulator.core import SPLITS, simulate
from lt4rec.data.simulator.summary import SimSummary, SplitStats, auc

__all__ = [
    "DENSE",
    "MULTI",
    "SPARSE",
    "SPLITS",
    "TRUTH_COLUMNS",
    "SimSummary",
    "SplitStats",
    "auc",
    "sim_spec",
    "simulate",
]
