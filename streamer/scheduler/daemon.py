"""``lt4rec scheduler``: runs the re-pruning job on APScheduler 3.x (cron daily by default).

APScheduler settings, chosen deliberately (``[scheduler]``):

* ``misfire_grace_time = misfire_grace_s`` (6 h): 3.x's default of 1 s silently skips a daily
  run that fires late because the process was busy, paused or restarting;
* ``coalesce = True``: runs missed while the scheduler was down become ONE run (each run uses
  the newest window anyway);
* ``max_instances = 1``: never two runs of the job inside one scheduler;
* the default in-memory job store, never shared: the schedule is recreated from the config
  at start. Exclusion ACROSS schedulers is the job's own (:mod:`streamer.scheduler.runs`):
  a renewed database lease per job and a unique (job, window end) row.

Each run: take the lease (skip when another scheduler holds it) -> plan the window (its end
is the idempotency key; skip when that run already finished) -> :func:`run_reprune` while a
thread renews the lease -> record the outcome -> release. Drift: the worker's alarms land
in ``scheduler_requests``; one early run per ``drift_min_interval_s`` at most.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from checkpoints import Notice
from lt4rec.config import AppConfig
from streamer.reprune import WindowError, plan_window, run_reprune
from streamer.scheduler.runs import JOB, RunLedger

log = logging.getLogger(__name__)
OUTCOME = {"published": "done", "registered": "done", "rejected": "rejected", "failed": "failed"}


@dataclass(frozen=True)
class RunOutcome:
    ran: bool
    status: str  # busy | finished-before | no-window | done | rejected | failed
    window_end: int | None = None
    version: int | None = None
    reason: str = ""


def make_trigger(cfg: AppConfig) -> BaseTrigger:
    sc = cfg.scheduler
    if sc.interval_s > 0:
        return IntervalTrigger(seconds=sc.interval_s, timezone=UTC)
    return CronTrigger.from_crontab(sc.cron, timezone=UTC)


class RepruneScheduler:
    """One scheduler process; many may run against one registry database."""

    def __init__(
        self,
        cfg: AppConfig,
        announce: Callable[[Notice], None] | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.cfg = cfg
        self.announce = announce
        self.say = say
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.ledger = RunLedger(cfg.registry.url)
        self.outcomes: list[RunOutcome] = []
        self._last_early = 0.0
        self._lock = threading.Lock()

    def close(self) -> None:
        self.ledger.close()

    # ---- one run -----------------------------------------------------------------------
    def run_once(self, trigger: str = "schedule") -> RunOutcome:
        sc = self.cfg.scheduler
        token = f"{self.owner}:{uuid.uuid4().hex[:6]}"  # per run: two runs never share a lease
        if not self.ledger.acquire(JOB, token, sc.lease_s):
            return self._done(RunOutcome(False, "busy", reason="another run holds the lease"))
        stop = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(stop, token), daemon=True)
        renewer.start()
        try:
            try:
                end = plan_window(self.cfg).end
            except WindowError as exc:
                return self._done(RunOutcome(False, "no-window", reason=str(exc)))
            if not self.ledger.start(JOB, end, token):
                return self._done(RunOutcome(False, "finished-before", end, reason="already run"))
            self.say(f"scheduler: re-pruning ({trigger}), window end {_iso(end)}")
            report = run_reprune(self.cfg, end=end, announce=self.announce, log=self.say)
            status = OUTCOME[report.status]
            self.ledger.finish(JOB, end, status, report.version, report.reason)
            return self._done(RunOutcome(True, status, end, report.version, report.reason))
        finally:
            stop.set()
            renewer.join(timeout=5)
            self.ledger.release(JOB, token)

    def _renew(self, stop: threading.Event, token: str) -> None:
        lease = self.cfg.scheduler.lease_s
        while not stop.wait(lease / 3):
            if not self.ledger.renew(JOB, token, lease):
                log.error("scheduler: lost the %s lease (expired while running)", JOB)

    def _done(self, outcome: RunOutcome) -> RunOutcome:
        with self._lock:
            self.outcomes.append(outcome)
        self.say(f"scheduler: {outcome.status}: {outcome.reason}"[:500])
        return outcome

    # ---- the daemon --------------------------------------------------------------------
    def serve(
        self, stop: threading.Event, max_runs: int | None = None, poll_s: float = 1.0
    ) -> list[RunOutcome]:
        """Run the schedule until ``stop`` is set (or ``max_runs`` outcomes exist)."""
        sc = self.cfg.scheduler
        sched = BackgroundScheduler(timezone=UTC)
        job = sched.add_job(
            self.run_once,
            make_trigger(self.cfg),
            id=JOB,
            misfire_grace_time=sc.misfire_grace_s,
            coalesce=sc.coalesce,
            max_instances=sc.max_instances,
        )
        sched.start()
        self.say(f"scheduler: next run {job.next_run_time} ({self.owner})")
        try:
            while not stop.wait(poll_s):
                self._early_runs(sched)
                if max_runs is not None and len(self.outcomes) >= max_runs:
                    break
        finally:
            sched.shutdown(wait=True)
        return self.outcomes

    def _early_runs(self, sched: BackgroundScheduler) -> None:
        sc = self.cfg.scheduler
        if not sc.drift_trigger:
            return
        if time.monotonic() - self._last_early < sc.drift_min_interval_s and self._last_early:
            return
        reasons = self.ledger.take_requests(JOB)
        if reasons:
            self._last_early = time.monotonic()
            self.say(f"scheduler: early run requested: {reasons[-1]}")
            sched.add_job(self.run_once, kwargs={"trigger": "drift"}, id=f"{JOB}-early",
                          replace_existing=True, max_instances=1)  # fmt: skip


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")
