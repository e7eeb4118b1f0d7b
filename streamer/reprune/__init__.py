"""Scheduled lottery-ticket re-pruning on the archive: window, gate, job."""

from streamer.reprune.gate import gate
from streamer.reprune.job import RepruneError, RepruneReport, run_reprune
from streamer.reprune.window import Window, WindowError, parse_end, plan_window

__all__ = [
    "RepruneError",
    "RepruneReport",
    "Window",
    "WindowError",
    "gate",
    "parse_end",
    "plan_window",
    "run_reprune",
]
