"""The main job (``lt4rec run``): the whole pipeline on embedded defaults, end to end.

1. **simulate** a traffic log with known ground truth (``[sim]``);
2. **fit** the configured model offline (lottery tickets chosen on the validation split,
   metrics on the test split) and write its checkpoint;
3. **replay** the log's impression / click / conversion events through Kafka in event-time
   order, into topics private to this run;
4. **join** them with the joiner daemon (SQLite state, ``--flush-at-end``) into labelled
   examples and the daily Parquet archive;
5. **check** the archive against the simulator's ground truth: one row per impression, labels
   equal under the window rules;
6. **learn online**: the online worker starts from the fit (registered as an ``offline``
   version of the run's registry), fine-tunes it on the joined example stream with progressive
   validation, checkpoints ``online`` versions, and the summary puts its rolling AUCs (the last
   ``worker.metrics_window`` examples of the stream) and its progressive AUCs on the test
   period (every impression of the test split's time range, scored by the worker before it
   trained on it) next to the offline fit's test AUCs. Under ``wait_full`` the stream's tail
   is the windows closed at the end (unclicked and unconverted impressions), so the rolling
   window there is a biased sample; the test period is the like-for-like comparison.

Everything lands under ``run.workdir``, which is emptied first so a run is reproducible —
except the joiner's state store and archive when ``[store] url`` / ``[archive] dir`` are set
to anything but their defaults (:func:`stream_paths`): those are used as configured, and must
be empty (a store or archive of another run would mix with this one's).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from checkpoints.fit import save_fit
from lt4rec.config import AppConfig, ArchiveConfig, StoreConfig
from lt4rec.data.simulator import SPLITS, simulate
from lt4rec.train.fit import run_fit

Log = Callable[[str], None]


class PipelineError(ValueError):
    """The main job cannot run with this configuration (e.g. a store that is not empty)."""


def stream_paths(cfg: AppConfig, work: Path) -> tuple[str, str]:
    """The joiner's store URL and archive directory for a run in ``work``: the configured
    ones when set (not the defaults), else ``work/state/joiner.db`` and ``work/archive``."""
    url = cfg.store.url
    if url == StoreConfig().url:
        url = f"sqlite:///{work / 'state' / 'joiner.db'}"
    archive = cfg.archive.dir
    if archive == ArchiveConfig().dir:
        archive = str(work / "archive")
    return url, archive


def _check_fresh(url: str, archive: str) -> None:
    """Refuse a store or archive that already holds another run's state or files."""
    from streamer.archive import archive_files
    from streamer.store import make_store

    if archive_files(archive):
        raise PipelineError(
            f"[archive] dir {archive} already holds archive files: use an empty one"
        )
    store = make_store(url)
    try:
        if store.partitions():
            raise PipelineError(f"[store] url {url}: the store is not empty: use a fresh one")
    finally:
        store.close()


def _stage(log: Log, name: str) -> Callable[[], float]:
    log(f"== {name}")
    t0 = time.perf_counter()
    return lambda: time.perf_counter() - t0


def check_archive(sim_dir: Path, archive_dir: Path) -> dict[str, Any]:
    """Compare the archive with the simulator's labels: counts and label mismatches."""
    from streamer.archive import read_archive

    truth = {
        iid: (c, v)
        for split in SPLITS
        for iid, c, v in zip(
            *pq.read_table(
                sim_dir / f"{split}.parquet", columns=["impression_id", "click", "conversion"]
            )
            .to_pydict()
            .values(),
            strict=True,
        )
    }
    arch = read_archive(archive_dir).select(["impression_id", "click", "conversion"]).to_pydict()
    ids = arch["impression_id"]
    got = dict(zip(ids, zip(arch["click"], arch["conversion"], strict=True), strict=True))
    wrong = sum(1 for iid, lab in got.items() if truth.get(iid) != lab)
    return {
        "impressions": len(truth),
        "archive_rows": len(ids),
        "duplicate_rows": len(ids) - len(got),
        "missing": len(set(truth) - set(got)),
        "label_mismatches": wrong,
        "clicks": int(np.sum(arch["click"])),
        "conversions": int(np.sum(arch["conversion"])),
    }


def run_pipeline(cfg: AppConfig, *, stream: bool = True, log: Log = print) -> dict[str, Any]:
    """Run the main job; returns (and writes to ``workdir/summary.json``) a summary."""
    work = Path(cfg.run.workdir)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    if stream:  # before any work: a configured store or archive must be empty
        _check_fresh(*stream_paths(cfg, work))
    sim_dir, fit_dir = work / "sim", work / "fit"
    summary: dict[str, Any] = {"workdir": str(work)}

    done = _stage(log, f"simulate {cfg.sim.impressions} impressions over {cfg.sim.days} days")
    sim = simulate(cfg.sim, sim_dir)
    summary["simulate"] = {"seconds": round(done(), 2), **_plain(sim)}

    done = _stage(log, f"fit {cfg.model.name}")
    result = run_fit(
        cfg,
        sim_dir / "train.parquet",
        sim_dir / "valid.parquet",
        sim_dir / "test.parquet",
        sim_dir / "spec.json",
        json_out=fit_dir / "metrics.json",
        plots_dir=fit_dir / "plots",
    )
    fit_ckpt = save_fit(work / "checkpoints" / f"{cfg.model.name}.ckpt", cfg, result)
    metrics = result.metrics
    summary["fit"] = {"seconds": round(done(), 2)} | {
        k: metrics[k] for k in ("ctr_auc", "cvr_auc", "ctcvr_auc", "ctr_gauc") if k in metrics
    }
    log(f"   test AUC: ctr={metrics['ctr_auc']:.4f} cvr={metrics['cvr_auc']:.4f}")

    if stream:
        summary["stream"] = _stream(cfg, sim_dir, work, fit_ckpt, summary["fit"], log)
    (work / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    log(f"== done: {work / 'summary.json'}")
    return summary


def _stream(
    cfg: AppConfig, sim_dir: Path, work: Path, fit_ckpt: Path, fit: dict[str, Any], log: Log
) -> dict[str, Any]:
    from streamer.daemon import DaemonOptions, JoinerDaemon
    from streamer.kafka.admin import admin_client, ensure_topics
    from streamer.replay import load_events, replay

    run_id = uuid.uuid4().hex[:8]
    sfx = f".run-{run_id}"
    t = cfg.topics
    topics = replace(
        t,
        impressions=t.impressions + sfx,
        clicks=t.clicks + sfx,
        conversions=t.conversions + sfx,
        examples=t.examples + sfx,
        dlq=t.dlq + sfx,
        models=t.models + sfx,
    )
    store_url, archive_dir = stream_paths(cfg, work)
    cfg = replace(
        cfg,
        topics=topics,
        kafka=replace(cfg.kafka, group_id=f"{cfg.kafka.group_id}.run-{run_id}"),
        store=replace(cfg.store, url=store_url),
        archive=replace(cfg.archive, dir=archive_dir),
        registry=replace(
            cfg.registry,
            url=f"sqlite:///{work / 'state' / 'registry.db'}",
            dir=str(work / "models"),
        ),
        worker=replace(cfg.worker, group_id=f"{cfg.worker.group_id}.run-{run_id}"),
    )
    out: dict[str, Any] = {"topics_suffix": f"run-{run_id}", "archive_dir": archive_dir}
    ensure_topics(cfg.kafka, cfg.topics)
    try:

        def do_replay() -> dict[str, Any]:
            done = _stage(log, f"replay events into Kafka at {cfg.kafka.bootstrap}")
            stats = replay(load_events(sim_dir), cfg.kafka, cfg.topics)
            return {"seconds": round(done(), 2), **_plain(stats)}

        if cfg.run.live:
            from streamer.system.main import live_stream

            out.update(live_stream(cfg, work, sim_dir, fit_ckpt, fit, do_replay, log))
            out["archive_check"] = check = check_archive(sim_dir, Path(archive_dir))
            _log_check(check, log)
            return out
        out["replay"] = do_replay()
        done = _stage(log, "join events into examples and the archive")
        daemon = JoinerDaemon(cfg, DaemonOptions(exit_when_idle_s=5.0, flush_at_end=True))
        joined = daemon.run()
        out["join"] = {"seconds": round(done(), 2), **_plain(joined)}

        check = check_archive(sim_dir, Path(archive_dir))
        out["archive_check"] = check
        _log_check(check, log)
        test_ts = pq.read_table(sim_dir / "test.parquet", columns=["ts"])["ts"]
        test_start = int(pc.min(test_ts).as_py())
        out["online"] = learn_online(cfg, fit_ckpt, fit, test_start, log)
    finally:
        admin = admin_client(cfg.kafka)
        try:
            admin.delete_topics([topics.impressions, topics.clicks, topics.conversions,
                                 topics.examples, topics.dlq, topics.models])  # fmt: skip
        finally:
            admin.close()
    return out


def _log_check(check: dict[str, Any], log: Log) -> None:
    log(
        f"   archive: {check['archive_rows']} rows for {check['impressions']} impressions, "
        f"{check['label_mismatches']} label mismatches, {check['duplicate_rows']} duplicates"
    )


class PeriodScores:
    """Progressive scores of the examples whose impression time is >= ``start_ts`` (ms)."""

    def __init__(self, start_ts: int) -> None:
        self.start = start_ts
        self.p: dict[str, list[np.ndarray]] = {"ctr": [], "cvr": []}
        self.y: dict[str, list[np.ndarray]] = {"ctr": [], "cvr": []}

    def __call__(self, cut: Any, result: Any, _t: float) -> None:  # WorkerOptions.on_trained
        if result is None or "ctr" not in result.scores:
            return
        keep = np.array([e.ts for e in cut.examples]) >= self.start  # [B]
        p, y = (v.numpy() for v in result.scores["ctr"])
        self.p["ctr"].append(p[keep])
        self.y["ctr"].append(y[keep])
        if "cvr" in result.scores:
            pv, yv = (v.numpy() for v in result.scores["cvr"])
            sel = keep[y > 0.5]  # the CVR scores are the clicked rows, in order
            self.p["cvr"].append(pv[sel])
            self.y["cvr"].append(yv[sel])

    def metrics(self) -> dict[str, float]:
        from lt4rec.metrics import auc

        out: dict[str, float] = {}
        for t in ("ctr", "cvr"):
            p = np.concatenate(self.p[t]) if self.p[t] else np.zeros(0)
            y = np.concatenate(self.y[t]) if self.y[t] else np.zeros(0)
            out[f"{t}_auc"], out[f"{t}_rows"] = auc(p, y), float(p.size)
        return out


def learn_online(
    cfg: AppConfig, fit_ckpt: Path, fit: dict[str, Any], test_start_ts: int, log: Log
) -> dict[str, Any]:
    """Stage 6: the online worker on the joined stream, from the fit as an offline version."""
    from streamer.system.main import register_fit
    from streamer.worker import WorkerDaemon, WorkerOptions

    done = _stage(log, "learn online: the worker fine-tunes the fit on the example stream")
    base = register_fit(cfg, fit_ckpt, fit)
    period = PeriodScores(test_start_ts)
    s = WorkerDaemon(cfg, WorkerOptions(exit_when_idle_s=5.0, on_trained=period)).run()
    test = period.metrics()
    keys = ("auc", "logloss", "calibration")
    rolling = {f"{t}_{k}": s.rolling[f"{t}_{k}"] for t in ("ctr", "cvr") for k in keys}
    out = {
        "seconds": round(done(), 2), "start": f"offline version {base.version}",
        "version": s.version, "checkpoints": s.checkpoints, "records": s.records,
        "trained": s.counters, "rolling": rolling, "window": cfg.worker.metrics_window,
        "progressive_test_period": test,
        "offline_test": {k: fit[k] for k in ("ctr_auc", "cvr_auc") if k in fit},
    }  # fmt: skip
    nan = float("nan")
    table = [
        ("offline fit, test split", fit.get("ctr_auc", nan), fit.get("cvr_auc", nan)),
        ("worker, progressive on the test period", test["ctr_auc"], test["cvr_auc"]),
        (f"worker, rolling (last {cfg.worker.metrics_window} examples)",
         rolling["ctr_auc"], rolling["cvr_auc"]),
    ]  # fmt: skip
    w = max(len(name) for name, _, _ in table)
    log(f"   worker: {s.counters['examples']} examples trained into online version {s.version}")
    log(f"   {'AUC':<{w}}  ctr     cvr")
    for name, a, b in table:
        log(f"   {name:<{w}}  {a:.4f}  {b:.4f}")
    if cfg.joiner.policy == "wait_full":
        log(
            "   (wait_full: a clicked, unconverted impression's example is final only after "
            f"the {cfg.joiner.attribution_window_s // 86400}-day attribution window, so during "
            "the replay CVR trains on conversions only and its negatives arrive at the end: "
            "the online CVR AUC shows that delayed-feedback bias; see docs/worker.md)"
        )
    return out


def _plain(obj: Any) -> dict[str, Any]:
    """A dataclass (or mapping) as JSON-friendly key/values."""
    from dataclasses import asdict, is_dataclass

    data = asdict(obj) if is_dataclass(obj) and not isinstance(obj, type) else dict(obj)
    return {k: v for k, v in data.items() if isinstance(v, int | float | str | bool)}
