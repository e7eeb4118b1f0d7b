"""Simulator: column contract, ground truth consistent with the window rules, target rates,
CTR/CVR conflict, determinism."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lt4rec.config import DataConfig, SimConfig
from lt4rec.data import FeatureSpec, load_parquet
from lt4rec.data.simulator import SPLITS, TRUTH_COLUMNS, SimSummary, auc, sim_spec, simulate
from lt4rec.data.simulator.traffic import start_ms

Sim = tuple[Path, SimSummary, pa.Table]
CFG = SimConfig(impressions=50_000, days=3, seed=7, users=4_000, items=1_500)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Sim:
    out = tmp_path_factory.mktemp("sim")
    summary = simulate(CFG, out)
    table = pa.concat_tables([pq.read_table(out / f"{s}.parquet") for s in SPLITS])
    return out, summary, table


def col(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


def test_column_contract(sim: Sim) -> None:
    _, _, t = sim
    types = {f.name: f.type for f in t.schema}
    assert types["impression_id"] == pa.string() and types["ts"] == pa.int64()
    assert types["user_id"] == pa.string() and types["item_id"] == pa.string()
    for name in ("click", "conversion", "click_ts", "conversion_ts"):
        assert types[name] == pa.int64(), name
    assert types["p_click"] == pa.float64() and types["p_conversion"] == pa.float64()
    spec = sim_spec()
    for name in spec.multi:
        assert types[name] == pa.list_(pa.string()), name
    for name in spec.dense:
        assert types[name] == pa.float64(), name
    for name in spec.sparse:
        assert types[name] in (pa.string(), pa.int64()), name
    assert set(types) == {*spec.feature_columns, "impression_id", "ts", *TRUTH_COLUMNS}
    ids = t.column("impression_id").to_pylist()
    assert len(set(ids)) == len(ids) == CFG.impressions
    assert ids[0] == "i7-000000000" and ids[-1] == f"i7-{CFG.impressions - 1:09d}"
    for name in ("impression_id", "ts", "click", "conversion", *spec.feature_columns):
        assert t.column(name).null_count == 0, name


def test_time_order_split_and_range(sim: Sim) -> None:
    out, summary, t = sim
    ts = col(t, "ts")
    assert (np.diff(ts) >= 0).all()
    begin = start_ms(CFG)
    assert ts.min() >= begin and ts.max() < begin + CFG.days * 86_400_000
    rows = [pq.ParquetFile(out / f"{s}.parquet").metadata.num_rows for s in SPLITS]
    assert rows == [40_000, 5_000, 5_000]
    assert {k: v.rows for k, v in summary.splits.items()} == dict(zip(SPLITS, rows, strict=True))
    hours = (ts // 3_600_000) % 24
    evening = np.isin(hours, [19, 20, 21]).sum()
    night = np.isin(hours, [2, 3, 4]).sum()
    assert evening > 4 * night  # diurnal traffic


def test_labels_follow_window_rules(sim: Sim) -> None:
    _, _, t = sim
    ts, click, conv = col(t, "ts"), col(t, "click"), col(t, "conversion")
    has_click = t.column("click_ts").is_valid().to_numpy(zero_copy_only=False)
    has_conv = t.column("conversion_ts").is_valid().to_numpy(zero_copy_only=False)
    click_ts = t.column("click_ts").fill_null(0).to_numpy()
    conv_ts = t.column("conversion_ts").fill_null(0).to_numpy()
    click_delay = click_ts - ts
    conv_delay = conv_ts - click_ts
    window = CFG.click_window_s * 1000
    attribution = CFG.attribution_window_s * 1000
    assert np.array_equal(click == 1, has_click & (click_delay >= 0) & (click_delay <= window))
    expected_conv = (click == 1) & has_conv & (conv_delay >= 0) & (conv_delay <= attribution)
    assert np.array_equal(conv == 1, expected_conv)
    assert not (has_conv & ~has_click).any()  # a conversion needs a click event
    assert (conv <= click).all()  # conversion => click
    assert (click_delay[has_click] >= 0).all() and (conv_delay[has_conv] >= 0).all()
    # the rules matter: some clicks are too late, some conversions beyond attribution
    assert (has_click & (click == 0)).sum() > 0
    assert (has_conv & (conv_delay > attribution)).sum() > 0
    # delays: clicks seconds-to-minutes, conversions minutes-to-days (heavy tail)
    assert 5_000 < np.median(click_delay[has_click]) < 300_000
    assert np.quantile(conv_delay[has_conv], 0.9) > 86_400_000


def test_rates_in_target_ranges(sim: Sim) -> None:
    _, summary, t = sim
    click, conv = col(t, "click"), col(t, "conversion")
    assert 0.05 <= click.mean() <= 0.10
    assert 0.002 <= conv.mean() <= 0.008
    assert 0.03 <= conv.sum() / click.sum() <= 0.10
    assert 10 <= click.sum() / conv.sum() <= 100
    assert summary.overall.clicks == click.sum()
    assert summary.overall.conversions == conv.sum()


def test_signal_is_learnable_and_ctr_cvr_conflict(sim: Sim) -> None:
    _, summary, t = sim
    click, conv = col(t, "click"), col(t, "conversion")
    p_click, p_conv = col(t, "p_click"), col(t, "p_conversion")
    clicked = click == 1
    assert (auc(click, p_click) or 0.0) > 0.75
    assert (auc(conv[clicked], p_conv[clicked]) or 0.0) > 0.7
    # Across items, being good for clicks is not being good for conversions.
    items = t.column("item_id").combine_chunks().dictionary_encode().indices.to_numpy()
    n = np.bincount(items)
    seen = n >= 5
    ctr_item = np.bincount(items, p_click)[seen] / n[seen]
    cvr_item = np.bincount(items, p_conv)[seen] / n[seen]
    assert np.corrcoef(ctr_item, cvr_item)[0, 1] < 0.3
    assert summary.events["item_corr_p_click_p_conversion"] < 0.3
    # Click-bait thumbnails lift CTR and hurt CVR.
    style = t.column("thumb_style")
    shock = pc.equal(style, "shock").to_numpy(zero_copy_only=False)
    plain = pc.equal(style, "plain").to_numpy(zero_copy_only=False)
    assert p_click[shock].mean() > 1.3 * p_click[plain].mean()
    assert p_conv[shock].mean() < 0.7 * p_conv[plain].mean()


def test_spec_and_summary_files(sim: Sim) -> None:
    out, summary, _ = sim
    spec = FeatureSpec.load(out / "spec.json")
    assert spec == sim_spec()
    assert spec.id == "impression_id" and spec.time == "ts" and spec.user == "user_id"
    assert "user_id" in spec.sparse and "item_id" in spec.sparse
    assert not set(spec.feature_columns) & {"ts", *TRUTH_COLUMNS}
    data = json.loads((out / "summary.json").read_text())
    assert data == json.loads(json.dumps(summary.to_dict()))
    assert data["config"]["seed"] == 7 and data["overall"]["rows"] == CFG.impressions


def test_output_loads_and_encodes(sim: Sim) -> None:
    out, _, _ = sim
    spec = FeatureSpec.load(out / "spec.json")
    cfg = DataConfig(hash_buckets=1009, multi_max_len=4)
    train, norm = load_parquet(out / "train.parquet", spec, cfg)
    test, _ = load_parquet(out / "test.parquet", spec, cfg, norm)
    assert len(train) == 40_000 and len(test) == 5_000
    assert train.multi.shape == (40_000, 2, 4) and (train.multi[:, :, 0] > 0).all()
    assert train.dense.shape == (40_000, 3)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    small = SimConfig(impressions=3_000, days=2, seed=11, users=300, items=200)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    simulate(small, a)
    simulate(small, b)
    simulate(SimConfig(impressions=3_000, days=2, seed=12, users=300, items=200), c)
    names = sorted(p.name for p in a.iterdir())
    assert names == ["spec.json", "summary.json", "test.parquet", "train.parquet", "valid.parquet"]
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for name in ("train.parquet", "valid.parquet", "test.parquet", "summary.json"):
        assert (a / name).read_bytes() != (c / name).read_bytes(), name


def test_conflict_knob_controls_the_opposition(tmp_path: Path) -> None:
    base: dict[str, Any] = dict(impressions=20_000, days=1, users=2_000, items=800, seed=3)
    stats = {}
    for conflict in (0.0, 1.5):
        summary = simulate(SimConfig(conflict=conflict, **base), tmp_path / str(conflict))
        stats[conflict] = summary.events["item_corr_p_click_p_conversion"]
    assert stats[1.5] < stats[0.0] - 0.2


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    impressions=st.integers(1, 400),
    users=st.integers(1, 50),
    items=st.integers(1, 50),
    categories=st.integers(1, 12),
    tags=st.integers(1, 20),
    window=st.integers(0, 7200),
    seed=st.integers(0, 2**31),
)
def test_any_small_config_gives_consistent_files(
    tmp_path: Path,
    impressions: int,
    users: int,
    items: int,
    categories: int,
    tags: int,
    window: int,
    seed: int,
) -> None:
    cfg = SimConfig(
        impressions=impressions, days=2, users=users, items=items, categories=categories,
        tags=tags, creators=5, click_window_s=window, seed=seed,
    )  # fmt: skip
    out = tmp_path / f"s{seed}-{impressions}"
    summary = simulate(cfg, out)
    t = pa.concat_tables([pq.read_table(out / f"{s}.parquet") for s in SPLITS])
    assert t.num_rows == impressions == summary.overall.rows
    ts, click, conv = col(t, "ts"), col(t, "click"), col(t, "conversion")
    click_ts = t.column("click_ts").fill_null(-(10**15)).to_numpy()
    assert (np.diff(ts) >= 0).all() and (conv <= click).all()
    assert np.array_equal(click == 1, (click_ts - ts >= 0) & (click_ts - ts <= window * 1000))
    p = col(t, "p_click")
    assert ((p > 0) & (p < 1)).all()
    text = (out / "summary.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in summary.json"))


def _day_category_means(t: pa.Table, column: str, day_ms: int) -> np.ndarray:
    """Mean of ``column`` per (day, category): [days, categories] (nan where empty)."""
    day = (col(t, "ts") - col(t, "ts").min()) // day_ms
    cat = np.array([int(c[3:]) for c in t.column("category").to_pylist()])
    x = col(t, column)
    out = np.full((int(day.max()) + 1, int(cat.max()) + 1), np.nan)
    for d in range(out.shape[0]):
        for c in range(out.shape[1]):
            sel = (day == d) & (cat == c)
            if sel.sum() >= 50:
                out[d, c] = x[sel].mean()
    return out


def test_drift_knob_moves_category_rates_over_days(tmp_path: Path) -> None:
    base: dict[str, Any] = dict(impressions=30_000, days=4, users=2_000, items=800, seed=5)
    change = {}
    for drift in (0.0, 0.6):
        simulate(SimConfig(drift=drift, **base), tmp_path / str(drift))
        t = pa.concat_tables(
            [pq.read_table(tmp_path / str(drift) / f"{s}.parquet") for s in SPLITS]
        )
        m = _day_category_means(t, "p_conversion", 86_400_000)
        change[drift] = float(np.nanmean(np.abs(np.log(m[-1] / m[0]))))
    assert change[0.6] > 3 * change[0.0]


def test_delay_dependence_knob_makes_long_videos_convert_later(tmp_path: Path) -> None:
    base: dict[str, Any] = dict(impressions=60_000, days=2, users=2_000, items=800, seed=6)
    late_gap = {}
    for dep in (0.0, 1.5):
        simulate(SimConfig(delay_dependence=dep, target_cvr=0.3, **base), tmp_path / str(dep))
        t = pa.concat_tables([pq.read_table(tmp_path / str(dep) / f"{s}.parquet") for s in SPLITS])
        conv = col(t, "conversion") == 1
        delay = (col(t, "conversion_ts")[conv] - col(t, "click_ts")[conv]) / 1000.0
        long_video = col(t, "duration_bucket")[conv] >= 4
        late = delay > 6 * 3600
        late_gap[dep] = float(late[long_video].mean() - late[~long_video].mean())
    assert abs(late_gap[0.0]) < 0.05 and late_gap[1.5] > 0.2
