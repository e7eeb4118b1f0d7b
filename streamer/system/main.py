"""The main job's live stage: publish the fit, run the live system, summarise and report.

:func:`live_stream` is called by :func:`streamer.pipeline.run_pipeline` after the offline fit
(its topics, store, archive and registry are the run's own). It applies the ``run.demo_*``
cadence, registers and publishes the fit as version 1 (an ``offline`` version: what the
servers serve and the worker starts from), runs :func:`streamer.system.live.run_live`, and
turns what it saw into the summary's ``live`` section and ``report.html``
(:func:`lt4rec.report.html.write_html_report`): the worker's rolling AUCs over time coloured
by version, mask density / overlap per version, versions and swaps, the ``/predict`` load.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from checkpoints import Registry, VersionInfo, verify
from lt4rec.config import AppConfig
from lt4rec.report.html import write_html_report
from lt4rec.report.sharing import sharing_report
from streamer.notices.announce import open_announcer
from streamer.system.live import run_live

Log = Callable[[str], None]


def demo_config(cfg: AppConfig) -> AppConfig:
    """The live system's configuration: production settings with the ``run.demo_*`` cadence."""
    r = cfg.run
    return replace(
        cfg,
        scheduler=replace(cfg.scheduler, interval_s=r.demo_reprune_interval_s,
                          drift_min_interval_s=min(cfg.scheduler.drift_min_interval_s, 60.0)),
        publish=replace(cfg.publish, online_every_s=r.demo_online_every_s),
        # online publishing happens at checkpoints: checkpoint at least as often
        worker=replace(cfg.worker, checkpoint_seconds=min(cfg.worker.checkpoint_seconds,
                                                          max(1.0, r.demo_online_every_s))),
        reprune=replace(cfg.reprune, label_delay_s=r.demo_label_delay_s,
                        gate_ctr_eps=max(cfg.reprune.gate_ctr_eps, r.demo_gate_eps),
                        gate_cvr_eps=max(cfg.reprune.gate_cvr_eps, r.demo_gate_eps)),
    )  # fmt: skip


def register_fit(cfg: AppConfig, fit_ckpt: Path, fit: dict[str, Any]) -> VersionInfo:
    """The offline fit as an ``offline`` version of the run's registry."""
    reg = Registry(cfg.registry)
    try:
        return reg.save(
            "offline", lambda p: shutil.copyfile(fit_ckpt, p), model_name=cfg.model.name,
            metrics={k: v for k, v in fit.items() if k != "seconds"},
        )  # fmt: skip
    finally:
        reg.close()


def publish_fit(cfg: AppConfig, fit_ckpt: Path, fit: dict[str, Any], log: Log) -> int:
    """Register the offline fit and publish it (version 1 of the run's registry)."""
    info = register_fit(cfg, fit_ckpt, fit)
    with open_announcer(cfg) as announcer:
        if announcer is None:
            raise RuntimeError("cannot announce on topics.models: is the broker up?")
        announcer.publish(info.version, "main job: the offline fit")
    log(f"   published the offline fit as version {info.version}")
    return info.version


def version_rows(cfg: AppConfig) -> list[dict[str, Any]]:
    """Every registered version with its mask density / overlap (read from its checkpoint for
    non-online versions and the newest online one: online versions keep their parent's masks)."""
    reg = Registry(cfg.registry)
    try:
        infos = reg.versions()
        published = {p.version.version for p in reg.publications()}
    finally:
        reg.close()
    online = [i.version for i in infos if i.kind == "online"]
    rows = []
    for info in infos:
        row: dict[str, Any] = {
            "version": info.version, "kind": info.kind, "status": info.status,
            "parent": info.parent, "published": info.version in published,
        }  # fmt: skip
        if info.kind != "online" or info.version == max(online, default=None) or row["published"]:
            try:
                total = sharing_report(verify(info).masks)["total"]
                row.update({k: round(total[k], 4) for k in ("density_ctr", "density_cvr",
                            "shared_fraction") if k in total})  # fmt: skip
            except Exception as exc:  # a refused file is a row of its own, not a failure
                row["error"] = str(exc)[:200]
        rows.append(row)
    return rows


def live_stream(
    cfg: AppConfig, work: Path, sim_dir: Path, fit_ckpt: Path, fit: dict[str, Any],
    replay_fn: Callable[[], dict[str, Any]], log: Log,
) -> dict[str, Any]:  # fmt: skip
    import pyarrow.parquet as pq

    cfg = demo_config(cfg)
    n = sum(pq.read_metadata(sim_dir / f"{s}.parquet").num_rows for s in ("train", "valid", "test"))
    log("== live system: server, worker, scheduler, joiner as processes "
        f"(logs in {work / 'logs'})")  # fmt: skip
    v1 = publish_fit(cfg, fit_ckpt, fit, log)
    live = run_live(cfg, work, n, replay_fn, log)
    versions = version_rows(cfg)
    live["versions"] = versions
    live["first_version"] = v1
    live["delayed_feedback"] = delayed_feedback(cfg, work, log)
    _report(work, fit, live, log)
    print_summary(live, log)
    return {"replay": live.pop("replay"), "join": live.get("join"), "live": live}


BENCH = Path(__file__).resolve().parents[2] / "ops" / "bench" / "delayed_feedback.py"


def delayed_feedback(cfg: AppConfig, work: Path, log: Log) -> dict[str, dict[str, float]]:
    """ES-DFM vs Vanilla (and the Oracle) for the report: the streaming delayed-feedback
    protocol of ``ops/bench/delayed_feedback.py`` (pre-train on 2 days, then hour by hour
    through the real joiner: train on what the stream delivers, evaluate on the next hour's
    true labels) on a small simulator of ``run.delayed_feedback_impressions``. CVR AUC / NLL
    weighted by hourly counts; ``{}`` when skipped or unavailable (a source checkout only)."""
    n = cfg.run.delayed_feedback_impressions
    if n <= 0 or not BENCH.is_file():
        return {}
    import json
    import subprocess
    import sys

    out = work / "delayed_feedback"
    cmd = [sys.executable, str(BENCH), "--impressions", str(n), "--days", "4",
           "--pretrain-days", "2", "--seeds", str(cfg.sim.seed),
           "--methods", "vanilla", "es_dfm", "oracle", "--out", str(out),
           "--set", f"kafka.bootstrap={cfg.kafka.bootstrap}", "--set", "data.hash_buckets=10007",
           "--set", "model.embedding_dim=8", "--set", "model.bottom=[64, 32]",
           "--set", "model.tower=[16]", "--set", "prune.rounds=1",
           "--set", "train.epochs=1"]  # fmt: skip
    log(f"== delayed feedback: ES-DFM vs Vanilla on {n} simulated impressions "
        f"(ops/bench/delayed_feedback.py, log in {out / 'bench.log'})")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    with (out / "bench.log").open("wb") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=900).returncode
    if rc != 0:
        log(f"   delayed-feedback comparison failed (exit {rc}); see {out / 'bench.log'}")
        return {}
    weighted = json.loads((out / "summary.json").read_text())["weighted"]
    res = {m: {"auc": v["cvr_auc"][0], "nll": v["cvr_nll"][0]} for m, v in weighted.items()}
    log("   CVR (hourly-weighted): " + ", ".join(
        f"{m} AUC {r['auc']:.4f} NLL {r['nll']:.4f}" for m, r in res.items()))  # fmt: skip
    return res


def print_summary(live: dict[str, Any], log: Log) -> None:
    """The console summary: AUCs over time, versions, swaps, freshness, the /predict load."""
    log("== summary of the live system")
    pts = [p for p in live.get("series", []) if p.get("ctr_auc") is not None]
    step = max(1, len(pts) // 6)
    log(
        "   worker rolling AUC over time (progressive validation over the last "
        "worker.metrics_window examples; under joiner.policy = wait_full the stream's order is "
        "the labels' finality, so late windows are biased samples: docs/worker.md):"
    )
    for p in pts[::step] + pts[-1:]:
        cvr = p.get("cvr_auc")
        log(f"     t={p['t']:>6.1f}s  v{p['version']:<3} ctr={p['ctr_auc']:.4f} "
            f"cvr={'n/a' if cvr is None else f'{cvr:.4f}'}")  # fmt: skip
    log("   versions: " + ", ".join(
        f"v{r['version']} {r['kind']}{' (published)' if r.get('published') else ''}"
        for r in sorted(live["versions"], key=lambda r: r["version"])))  # fmt: skip
    log(
        "   server served: "
        + " -> ".join(f"v{p['version']} at t={p['t']}s" for p in live.get("server_versions", []))
    )
    w = live.get("worker") or {}
    log(f"   freshness: {w.get('published_online', 0):.0f} online versions published by the "
        f"worker during the stream; once the re-pruned version was seen published, the server "
        f"served it after {live.get('swap_wait_server_s')}s and the worker switched after "
        f"{live.get('swap_wait_worker_s')}s (catch-up), pausing training "
        f"{w.get('swap_pause_ms')} ms")  # fmt: skip
    load = live.get("predict_load") or {}
    log(f"   /predict during re-prune + swap: {load.get('requests')} requests, "
        f"{load.get('errors')} errors, versions {load.get('versions')}, "
        f"p50 {load.get('p50_ms')} ms, p99 {load.get('p99_ms')} ms")  # fmt: skip
    preds = live.get("predictions") or {}
    log(f"   /predict example (version {preds.get('model_version')}): ctr "
        f"{[round(x, 4) for x in preds.get('ctr') or []]} cvr "
        f"{[round(x, 4) for x in preds.get('cvr') or []]}")  # fmt: skip


def _report(work: Path, fit: dict[str, Any], live: dict[str, Any], log: Log) -> None:
    load = live.get("predict_load") or {}
    rep = live.get("reprune") or {}
    series = [p for p in live.get("series", []) if p.get("ctr_auc") is not None]
    sections = {
        "Offline fit (test split)": fit,
        "Re-pruning run": {k: v for k, v in rep.items() if k != "metrics"} | rep.get("metrics", {}),
        "Hot-swap": {"server waited (s)": live.get("swap_wait_server_s"),
                     "worker waited (s)": live.get("swap_wait_worker_s"),
                     **(live.get("worker") or {})},
        "/predict load during the re-prune and swap": {
            k: v for k, v in load.items() if k != "first_errors"},
        "Server versions over time": {f"t={p['t']}s": f"v{p['version']} ({p.get('kind')})"
                                      for p in live.get("server_versions", [])},
        "Versions": {f"v{r['version']}": f"{r['kind']} {r['status']} parent={r['parent']}"
                     + (" published" if r.get("published") else "") for r in live["versions"]},
    }  # fmt: skip
    path = write_html_report(
        {
            "auc_series": series,
            "versions": live["versions"],
            "sections": sections,
            "delayed_feedback": live.get("delayed_feedback") or {},
        },
        work / "report.html",
        title="lt4rec main job",
    )
    live["report"] = str(path)
    log(f"   report: {path}")
