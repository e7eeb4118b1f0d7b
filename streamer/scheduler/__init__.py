"""The scheduler of the re-pruning job (APScheduler) and its cross-process exclusion."""

from streamer.scheduler.daemon import JOB, RepruneScheduler, RunOutcome, make_trigger
from streamer.scheduler.runs import RunLedger

__all__ = ["JOB", "RepruneScheduler", "RunLedger", "RunOutcome", "make_trigger"]
