# mypy: allow-untyped-defs
"""The re-pruning job on a simulated archive: window, gate, registry, publishing."""

from __future__ import annotations

import pytest

from checkpoints import Registry
from streamer.archive.complete import complete_until
from streamer.reprune import WindowError, parse_end, plan_window, run_reprune
from tests.streamer.reprune.conftest import HOUR


def test_window_splits_and_label_cut(reprune_env):
    cfg = reprune_env()
    w = plan_window(cfg)
    cut = complete_until(cfg.archive.dir, cfg.topics.partitions)
    assert w.complete and w.label_cut == cut
    delay = (cfg.joiner.click_window_s + cfg.joiner.attribution_window_s) * 1000
    assert w.end == (cut - delay) // 3_600_000 * 3_600_000  # floored to the hour
    assert w.holdout_start == w.end - 8 * HOUR * 1000
    assert w.train_end == w.holdout_start - 6 * HOUR * 1000
    assert w.start == w.end - int(2.5 * 24 * HOUR * 1000)
    early = plan_window(cfg, end=w.end - 24 * HOUR * 1000)
    assert early.end == w.end - 24 * HOUR * 1000  # --end earlier than the label cut
    later = plan_window(cfg, end=w.end + 24 * HOUR * 1000)
    assert later.end == w.end  # never later than labels are final
    with pytest.raises(WindowError, match="no archive files"):
        plan_window(cfg, end=parse_end("2020-01-01"))
    assert parse_end("2026-11-05") == parse_end("2026-11-05T00:00:00+00:00")
    with pytest.raises(WindowError, match="is not a date"):
        parse_end("yesterday")


def test_without_markers_the_archive_high_water_mark_is_the_cut(reprune_env):
    w = plan_window(reprune_env(markers=False))
    assert not w.complete and w.label_cut > 0


@pytest.mark.postgres
def test_first_run_publishes_then_a_worse_candidate_is_rejected(reprune_env, db_url):
    cfg = reprune_env(db_url)
    first = run_reprune(cfg, log=lambda m: None)
    assert first.status == "published", first.reason
    assert first.baseline is None and "no model in service" in first.reason
    assert first.rows["train"] >= 500 and first.rows["holdout"] >= 100
    assert first.candidate["ctr_auc"] > 0.5 and first.notice is not None
    assert first.peak_rss_mb > 0 and first.seconds > 0
    reg = Registry(cfg.registry)
    try:
        v1 = reg.get(first.version)
        assert v1.kind == "repruned" and v1.status == "published"
        assert (v1.data_first_ts, v1.data_last_ts) == (
            first.window["start"],
            first.window["train_end"],
        )
        assert v1.metrics["label_cutoff_ts"] == first.window["label_cut"]
        assert reg.current().version.version == v1.version

        # a candidate that cannot learn (lr ~ 0) loses against v1 on the same rows
        worse = reprune_env(db_url, train={"lr": 1e-9, "epochs": 1, "threads": 1})
        second = run_reprune(worse, log=lambda m: None)
        assert second.status == "rejected", second.reason
        assert second.baseline == v1.version
        assert second.baseline_metrics["rows"] == second.candidate["rows"]  # same rows
        assert second.baseline_metrics["ctr_auc"] == pytest.approx(first.candidate["ctr_auc"])
        v2 = reg.get(second.version)
        assert v2.status == "rejected" and "gate failed" in v2.reason and v2.parent == v1.version
        assert reg.current().version.version == v1.version  # the system is untouched
    finally:
        reg.close()


def test_a_run_without_spec_or_model_is_recorded_as_failed(reprune_env):
    cfg = reprune_env(reprune={"spec": ""})
    report = run_reprune(cfg, log=lambda m: None)
    assert report.status == "failed" and "reprune.spec" in report.reason
    reg = Registry(cfg.registry)
    try:
        row = reg.get(report.version)
        assert row.status == "failed" and "reprune.spec" in row.reason and row.path is None
        assert reg.current() is None
    finally:
        reg.close()


def test_not_enough_rows_is_a_failed_run(reprune_env):
    cfg = reprune_env(reprune={"min_train_rows": 10_000_000})
    report = run_reprune(cfg, log=lambda m: None)
    assert report.status == "failed" and "not enough data" in report.reason


def test_an_online_version_that_trained_on_the_holdout_is_not_the_baseline(reprune_env):
    """The gate compares models that have not seen its labels: an online version in service
    fine-tuned past the held-out start is replaced by its newest ancestor that was not."""
    import shutil

    from checkpoints import publish

    cfg = reprune_env()
    first = run_reprune(cfg, log=lambda m: None)
    assert first.status == "published", first.reason
    hold = first.window["holdout_start"]
    reg = Registry(cfg.registry)
    try:
        v1 = reg.get(first.version)

        def online(last_ts: int, parent: int) -> int:
            info = reg.save("online", lambda p: shutil.copyfile(str(v1.path), p),
                            model_name=v1.model_name, parent=parent,
                            data_range=(first.window["start"], last_ts))  # fmt: skip
            publish(reg, info.version, "online")
            return info.version

        clean = online(hold - 1, v1.version)  # trained only on rows before the holdout
        seen = online(hold + 3600_000, clean)  # fine-tuned on held-out rows
        said: list[str] = []
        again = run_reprune(cfg, log=said.append)
        assert again.baseline == clean, (again.baseline, said)
        assert any(f"baseline = version {clean}" in m and f"version {seen}" in m for m in said)
    finally:
        reg.close()
