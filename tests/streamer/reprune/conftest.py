"""Fixtures of the re-pruning tests: an archive built from simulated ground truth."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import tomli_w

from lt4rec.config import AppConfig, SimConfig, load_app_config, to_dict
from streamer.archive import day_of
from streamer.archive.complete import write_marker

HOUR = 3600
SIM = SimConfig(
    impressions=40_000,
    days=4,
    users=300,
    items=200,
    seed=5,
    attribution_window_s=86_400,
    target_ctr=0.12,
    target_cvr=0.25,
)
SMALL = {
    "data": {"hash_buckets": 1009, "batch_size": 256, "multi_max_len": 4},
    "model": {"embedding_dim": 4, "bottom": [16, 8], "tower": [4]},
    "prune": {"rounds": 1, "rate": 0.5, "rewind_step": 2},
    "train": {"epochs": 2, "threads": 1, "lr": 0.01},
    "joiner": {"attribution_window_s": 86_400},
    "topics": {"partitions": 2},
    "reprune": {"window_days": 2.5, "valid_hours": 6.0, "holdout_hours": 8.0,
                "min_train_rows": 500, "min_holdout_rows": 100, "shuffle_rows": 2048,
                "read_rows": 512},
}  # fmt: skip


def write_archive(sim_dir: Path, archive: Path, partitions: int, markers: bool = True) -> int:
    """The joiner's archive of ``sim_dir`` (final rows by the window rules); returns rows."""
    tables = [pq.read_table(sim_dir / f"{s}.parquet") for s in ("train", "valid", "test")]
    t = pa.concat_tables(tables).drop_columns(["p_click", "p_conversion"])
    ts = t.column("ts").to_numpy()
    click = t.column("click").to_numpy()
    conv = t.column("conversion").to_numpy()
    click_ts = t.column("click_ts").to_numpy(zero_copy_only=False)
    conv_ts = t.column("conversion_ts").to_numpy(zero_copy_only=False)
    label_ts = np.where(
        conv == 1, conv_ts,
        np.where(click == 1, click_ts + SIM.attribution_window_s * 1000, ts + HOUR * 1000),
    ).astype(np.int64)  # fmt: skip
    t = t.append_column("label_ts", pa.array(label_ts)).append_column(
        "kind", pa.array(["final"] * t.num_rows)
    )
    t = t.set_column(
        t.schema.get_field_index("click_ts"),
        "click_ts",
        pc.if_else(pc.equal(t["click"], 1), t["click_ts"], None),
    )
    t = t.set_column(
        t.schema.get_field_index("conversion_ts"), "conversion_ts",
        pc.if_else(pc.equal(t["conversion"], 1), t["conversion_ts"], None),
    )  # fmt: skip
    part = np.arange(t.num_rows) % partitions
    days = np.array([day_of(int(x)) for x in ts])
    for p in range(partitions):
        for day in sorted(set(days.tolist())):
            rows = np.flatnonzero((part == p) & (days == day))
            folder = archive / f"dt={day}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(
                t.take(rows), folder / f"part-p{p:04d}-000000000000-{len(rows):012d}.parquet"
            )
        if markers:
            write_marker(archive, p, int(label_ts[part == p].max()))
    return t.num_rows


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lt4rec.data.simulator import simulate

    out = tmp_path_factory.mktemp("sim-reprune")
    simulate(SIM, out)
    return out


@pytest.fixture
def reprune_env(tmp_path: Path, sim_dir: Path) -> Callable[..., AppConfig]:
    """Factory: a config whose archive is the simulated log; registry in ``db_url`` or SQLite."""

    def make(db_url: str | None = None, markers: bool = True, **sections: dict) -> AppConfig:
        data = to_dict(AppConfig())
        for sec, values in SMALL.items():
            data[sec].update(values)
        archive = tmp_path / "archive"
        if not archive.exists():
            write_archive(sim_dir, archive, SMALL["topics"]["partitions"], markers)
        data["archive"]["dir"] = str(archive)
        data["registry"].update(
            url=db_url or f"sqlite:///{tmp_path / 'registry.db'}", dir=str(tmp_path / "models")
        )
        data["reprune"]["spec"] = str(sim_dir / "spec.json")
        for sec, values in sections.items():
            data[sec].update(values)
        path = tmp_path / "reprune.toml"
        path.write_text(tomli_w.dumps(data))
        return load_app_config(path)

    return make
