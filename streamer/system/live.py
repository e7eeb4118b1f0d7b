"""The live system of the main job: joiner, worker, scheduler and server as processes.

After the offline fit (published as version 1 of the run's registry) the main job starts the
four daemons the way a deployment runs them (``lt4rec streamer|worker|scheduler|serve`` with
one configuration file, ``run.workdir/config.toml``), replays the simulated log into Kafka, and
watches (:class:`Watch`, every ``run.sample_s``): the worker's rolling AUCs and version, the
server's version, the joiner's and worker's counters — one progress line every
``run.progress_s``. The phases:

1. **stream**: the joiner joins the replayed events (``--flush-at-end``: the log is finite, so
   at its end every window closes and every archived label is final), the worker trains
   every example and publishes online versions that shadow-score no worse than the version in
   service (``publish.online_every_s``);
2. **re-prune**: once the archive is complete the main job asks the scheduler for a run (the
   scheduler also runs every ``scheduler.interval_s``); the job re-runs the ticket search on
   the archive window, gates the candidate against the version in service and publishes it;
3. **hot-swap**: the worker catches the new version up and switches at a batch boundary, the
   server swaps its reference; meanwhile a bounded ``/predict`` load records every answer
   (errors, versions); then a few real instances are scored.

The daemons stop with SIGTERM (drain, checkpoint, exit), also on Ctrl-C.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checkpoints import Registry
from lt4rec.config import AppConfig, to_toml
from streamer.scheduler.runs import JOB, RunLedger
from streamer.system.probe import PredictLoad, get_json, sample, scrape, wait_until
from streamer.system.procs import Daemons, free_port

Log = Callable[[str], None]


@dataclass
class Endpoints:
    server: str
    worker_metrics: str
    joiner_metrics: str


@dataclass
class Watch:
    """Samples the daemons on a thread: the time series of the summary and report."""

    ends: Endpoints
    log: Log
    sample_s: float
    progress_s: float
    t0: float = field(default_factory=time.monotonic)
    series: list[dict[str, Any]] = field(default_factory=list)
    server_versions: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lt4rec-watch", daemon=True)
        self._last_line = 0.0

    def start(self) -> Watch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.sample_s):
            self.sample()

    def sample(self) -> dict[str, Any]:
        t = round(time.monotonic() - self.t0, 1)
        w = scrape(self.ends.worker_metrics)
        j = scrape(self.ends.joiner_metrics)
        served = (get_json(self.ends.server + "/model") or {}).get("serving") or {}
        point: dict[str, Any] = {"t": t, "version": sample(w, "lt4rec_worker_version")}
        for task in ("ctr", "cvr"):
            point[f"{task}_auc"] = sample(w, "lt4rec_worker_rolling_auc", task=task)
            point[f"{task}_trained"] = sample(w, "lt4rec_worker_examples_trained_total", task=task)
        point["server_version"] = served.get("version")
        out = "lt4rec_joiner_examples_out_total"
        point["joined"] = sum(v for (n, _), v in j.items() if n == out)
        if point["version"] is not None:
            point["version"] = int(point["version"])
            self.series.append(point)
        sv = point["server_version"]
        last = self.server_versions[-1]["version"] if self.server_versions else None
        if sv is not None and sv != last:
            self.server_versions.append({"t": t, "version": sv, "kind": served.get("kind")})
        if time.monotonic() - self._last_line >= self.progress_s:
            self._last_line = time.monotonic()
            auc = " ".join(f"{k}_auc={v:.4f}" for k in ("ctr", "cvr")
                           if (v := point.get(f"{k}_auc")) is not None and v == v)  # fmt: skip
            self.log(f"   t={t:>6.1f}s joined={point['joined']:.0f} trained="
                     f"{point['ctr_trained'] or 0:.0f} worker=v{point['version']} "
                     f"server=v{sv} {auc}")  # fmt: skip
        return point


def live_config(cfg: AppConfig, work: Path) -> Path:
    """Write the daemons' shared configuration file."""
    path = work / "config.toml"
    path.write_text(to_toml(cfg))
    return path


def run_live(
    cfg: AppConfig, work: Path, n_impressions: int, replay_fn: Callable[[], dict[str, Any]],
    log: Log,
) -> dict[str, Any]:  # fmt: skip
    """Phases 1-3 of the module docstring; the daemons are stopped whatever happens."""
    r = cfg.run
    sp, wp, jp = free_port(), free_port(), free_port()
    ends = Endpoints(f"http://127.0.0.1:{sp}", f"http://127.0.0.1:{wp}/metrics",
                     f"http://127.0.0.1:{jp}/metrics")  # fmt: skip
    config = live_config(cfg, work)
    daemons = Daemons(config, work / "logs")
    out: dict[str, Any] = {"config": str(config), "logs": str(work / "logs")}
    watch = Watch(ends, log, r.sample_s, r.progress_s)
    load: PredictLoad | None = None
    reg = Registry(cfg.registry)  # one connection each for the whole run (polled below)
    ledger = RunLedger(cfg.registry.url)
    try:
        daemons.start("server", "serve", "--port", str(sp))
        daemons.start("worker", "worker", "--set", f"metrics.port={wp}")
        daemons.start("scheduler", "scheduler")
        wait_until(lambda: _healthy(ends.server, daemons), r.start_timeout_s, what="server")
        wait_until(lambda: bool(_check(daemons) or scrape(ends.worker_metrics)),
                   r.start_timeout_s, what="worker metrics")  # fmt: skip
        daemons.start("joiner", "streamer", "--set", f"metrics.port={jp}",
                      "--exit-when-idle", str(r.join_idle_s), "--flush-at-end")  # fmt: skip
        watch.start()
        t0 = time.monotonic()
        out["replay"] = replay_fn()
        rc = daemons.wait("joiner", r.phase_timeout_s)
        out["join"] = {"seconds": round(time.monotonic() - t0, 1), "exit_status": rc}
        if rc != 0:
            raise RuntimeError(f"the joiner exited with {rc}: see {work / 'logs' / 'joiner.log'}")
        log(f"   joiner done: archive complete after {out['join']['seconds']}s")
        wait_until(lambda: _trained(ends, daemons) >= n_impressions, r.phase_timeout_s,
                   what="the worker training every example")  # fmt: skip
        out["stream_seconds"] = round(time.monotonic() - t0, 1)

        pub = reg.current()
        before = None if pub is None else pub.version.version
        load = PredictLoad(ends.server, _body(work), clients=r.predict_clients).start()
        ledger.request(JOB, "main job: the archive is complete")
        log("== re-prune: requested from the scheduler")
        t1 = time.monotonic()
        wait_until(lambda: _check(daemons) or _repruned(reg, ledger), r.phase_timeout_s,
                   every_s=1.0, what="a re-pruning run")  # fmt: skip
        rep = _repruned(reg, ledger)
        assert rep is not None
        out["reprune"] = {"seconds": round(time.monotonic() - t1, 1), **rep}
        log(f"   re-prune: version {rep['version']} {rep['status']} ({rep['reason'][:160]})")
        if rep["status"] == "published":
            v = rep["version"]
            out["swap_wait_server_s"] = round(wait_until(
                lambda: _check(daemons) or _serves_lineage(reg, ends, v), r.phase_timeout_s,
                every_s=0.2, what=f"the server serving version {v}"), 2)  # fmt: skip
            out["swap_wait_worker_s"] = round(wait_until(
                lambda: _check(daemons) or (sample(scrape(ends.worker_metrics),
                                                   "lt4rec_worker_swaps_total") or 0) >= 1,
                r.phase_timeout_s, every_s=0.2, what="the worker's hot-swap"), 2)  # fmt: skip
            log(f"   hot-swap: server after {out['swap_wait_server_s']}s, worker after "
                f"{out['swap_wait_worker_s']}s")  # fmt: skip
        time.sleep(r.settle_s)  # a little traffic on the new version
        out["predict_load"] = load.stop()
        out["predict_load"]["versions_before"] = before
        load = None
        out["predictions"] = _predict_examples(ends.server, work)
        wm = scrape(ends.worker_metrics)
        out["worker"] = {
            "version": sample(wm, "lt4rec_worker_version"),
            "swaps": sample(wm, "lt4rec_worker_swaps_total"),
            "swap_pause_ms": round(1000 * (sample(wm, "lt4rec_worker_swap_pause_seconds") or 0), 2),
            "published_online": sample(wm, "lt4rec_worker_published_total"),
        }  # fmt: skip
        out["server"] = get_json(ends.server + "/model")
    finally:
        if load is not None:
            load.stop()
        watch.stop()
        out["exit_status"] = daemons.stop_all(grace_s=r.stop_grace_s)
        ledger.close()
        reg.close()
    out["series"] = watch.series
    out["server_versions"] = watch.server_versions
    return out


def _check(daemons: Daemons) -> bool:
    daemons.check()  # raises DaemonDied with the log tail
    return False


def _healthy(url: str, daemons: Daemons) -> bool:
    _check(daemons)
    return (get_json(url + "/healthz") or {}).get("status") == "ok"


def _trained(ends: Endpoints, daemons: Daemons) -> float:
    _check(daemons)
    return sample(scrape(ends.worker_metrics), "lt4rec_worker_examples_trained_total",
                  task="ctr") or 0.0  # fmt: skip


def _repruned(reg: Registry, ledger: RunLedger) -> dict[str, Any] | None:
    """The newest re-pruned version (published or rejected), or a failed run."""
    for info in reversed(reg.versions()):
        if info.kind == "repruned" and info.status in ("published", "rejected", "registered"):
            reason = info.reason or str(info.metrics.get("gate", ""))
            return {"version": info.version, "status": info.status, "reason": reason,
                    "metrics": info.metrics, "parent": info.parent}  # fmt: skip
    failed = [run for run in ledger.runs(JOB) if run.status == "failed"]
    if failed:
        raise RuntimeError(f"the re-pruning run failed: {failed[-1].reason}")
    return None


def _serves_lineage(reg: Registry, ends: Endpoints, version: int) -> bool:
    """The server serves ``version`` or a later version descending from it."""
    served = ((get_json(ends.server + "/model") or {}).get("serving") or {}).get("version")
    v: int | None = served
    while v is not None and v >= version:
        if v == version:
            return True
        v = reg.get(v).parent
    return False


def _instances(work: Path, n: int) -> list[dict[str, Any]]:
    """``n`` impressions of the simulated test split as /predict instances (features only)."""
    import pyarrow.parquet as pq

    from lt4rec.data import FeatureSpec

    spec = FeatureSpec.load(work / "sim" / "spec.json")
    cols = [*spec.sparse, *spec.multi, *spec.dense]
    return pq.read_table(work / "sim" / "test.parquet", columns=cols).slice(0, n).to_pylist()


def _body(work: Path) -> bytes:
    return json.dumps({"instances": _instances(work, 8)}, default=str).encode()


def _predict_examples(url: str, work: Path) -> dict[str, Any]:
    import urllib.request

    req = urllib.request.Request(url + "/predict", data=_body(work), method="POST",
                                 headers={"content-type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as r:
        data: dict[str, Any] = json.loads(r.read())
    return {k: data[k][:3] if isinstance(data.get(k), list) else data.get(k)
            for k in ("ctr", "cvr", "ctcvr", "model_version")}  # fmt: skip
