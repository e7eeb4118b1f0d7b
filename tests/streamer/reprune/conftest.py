"""Fixtures of the re-pruning tests: an archive built from simulated ground truth."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import tomli_w

from lt4rec.config import AppConfig, JoinerConfig, SimConfig, load_app_config, to_dict
from streamer.archive.backfill import backfill
from streamer.archive.complete import MARKER_DIR

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


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lt4rec.data.simulator import simulate

    out = tmp_path_factory.mktemp("sim-reprune")
    simulate(SIM, out)
    return out


@pytest.fixture
def reprune_env(
    tmp_path: Path, sim_dir: Path, kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> Callable[..., AppConfig]:
    """Factory: a config whose archive is the simulated log; registry in ``db_url`` or SQLite;
    a models topic of its own on the real broker (notices of ``lt4rec prune``)."""
    models_topic = unique_name("rp") + ".models"

    def make(db_url: str | None = None, markers: bool = True, **sections: dict) -> AppConfig:
        data = to_dict(AppConfig())
        for sec, values in SMALL.items():
            data[sec].update(values)
        data["kafka"]["bootstrap"] = kafka_bootstrap
        data["topics"]["models"] = models_topic
        archive = tmp_path / "archive"
        if not archive.exists():
            files = [sim_dir / f"{s}.parquet" for s in ("train", "valid", "test")]
            joiner = JoinerConfig(attribution_window_s=SIM.attribution_window_s)
            backfill(files, archive, joiner, SMALL["topics"]["partitions"])
            if not markers:
                shutil.rmtree(archive / MARKER_DIR)
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
