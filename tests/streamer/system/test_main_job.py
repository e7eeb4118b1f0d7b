"""The main job's live system end to end on the real broker (issue 9's acceptance path).

Replay => joiner => worker trains every example => the scheduler's re-prune publishes a new
version => worker and server both switch to it, while a bounded /predict load sees zero
errors and only versions that were in service; the daemons stop cleanly; the HTML report and
the summary say what happened.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lt4rec_cli.main import app

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_live_main_job_reprunes_publishes_and_hot_swaps_worker_and_server(
    kafka_bootstrap, tmp_path
):
    work = tmp_path / "main"
    args = [
        "run",
        "--set", f"run.workdir={work}",
        "--set", f"kafka.bootstrap={kafka_bootstrap}",
        "--set", "sim.impressions=16000", "--set", "sim.days=3",
        "--set", "sim.users=800", "--set", "sim.items=300",
        "--set", "model.bottom=[32, 16]", "--set", "model.tower=[8]",
        "--set", "model.embedding_dim=8", "--set", "prune.rounds=1",
        "--set", "data.hash_buckets=1009", "--set", "train.epochs=1",
        "--set", "reprune.window_days=3", "--set", "reprune.valid_hours=12",
        "--set", "reprune.holdout_hours=18",
        # the mechanics are under test here, not the gate: any defined candidate passes
        "--set", "reprune.gate_ctr_eps=1.0", "--set", "reprune.gate_cvr_eps=1.0",
        "--set", "run.demo_online_every_s=5", "--set", "run.progress_s=10",
        "--set", "publish.online_eps=1.0", "--set", "publish.online_min_rows=200",
        "--set", "run.delayed_feedback_impressions=8000",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((work / "summary.json").read_text())
    stream = summary["stream"]
    check = stream["archive_check"]
    assert check["archive_rows"] == check["impressions"] == 16000
    assert check["missing"] == check["duplicate_rows"] == check["label_mismatches"] == 0
    live = stream["live"]
    v1 = live["first_version"]
    rep = live["reprune"]
    assert rep["status"] == "published", rep
    v2 = rep["version"]
    assert v2 > v1
    # both consumers switched: the server serves v2 or an online version of its lineage,
    # the worker swapped once (catch-up included) with a measured pause
    assert live["swap_wait_server_s"] >= 0 and live["swap_wait_worker_s"] >= 0
    assert live["worker"]["swaps"] >= 1 and live["worker"]["swap_pause_ms"] > 0
    versions = {r["version"]: r for r in live["versions"]}

    def lineage(v: int) -> list[int]:
        out = [v]
        while versions[out[-1]]["parent"] is not None:
            out.append(versions[out[-1]]["parent"])
        return out

    served = [p["version"] for p in live["server_versions"]]
    assert served[0] == v1 and any(v2 in lineage(v) for v in served[1:]), served
    # the worker's own online versions reached the servers too (the gate here admits any)
    assert live["worker"]["published_online"] >= 1
    assert any(versions[v]["kind"] == "online" and versions[v]["published"] for v in versions)
    assert versions[v2]["kind"] == "repruned" and versions[v1]["kind"] == "offline"
    load = live["predict_load"]
    assert load["requests"] > 0 and load["errors"] == 0, load
    in_service = {str(r["version"]) for r in live["versions"] if r["published"]}
    assert set(load["versions"]) <= in_service, (load["versions"], in_service)
    assert any(v2 in lineage(int(v)) for v in load["versions"])  # the load saw the swap
    preds = live["predictions"]
    assert len(preds["ctr"]) == 3 and all(0.0 < p < 1.0 for p in preds["ctr"])
    assert all(rc == 0 for rc in live["exit_status"].values()), live["exit_status"]
    report = (work / "report.html").read_text()
    assert "data:image/png;base64," in report and f"v{v2}" in report
    assert "Delayed feedback" in report  # ES-DFM vs Vanilla vs Oracle
    assert set(live["delayed_feedback"]) == {"vanilla", "es_dfm", "oracle"}
    assert "== summary of the live system" in result.output
    assert live["series"] and all("ctr_auc" in p for p in live["series"])
