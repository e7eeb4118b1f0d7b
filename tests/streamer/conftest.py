"""Fixtures of the streamer tests on the real broker (joiner and worker integration tests).

Every test gets its own topics, consumer group, state store and archive directory; the
simulated data set (1 day, a few thousand impressions) is built once per session.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lt4rec.config import AppConfig, to_dict
from streamer.replay import ReplayEvents, load_events
from tests.streamer.integration.streamer_it_support import PARTITIONS, SIM, StreamEnv, write_env


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lt4rec.data.simulator import simulate

    out = tmp_path_factory.mktemp("sim")
    simulate(SIM, out)
    return out


@pytest.fixture(scope="session")
def sim_events(sim_dir: Path) -> ReplayEvents:
    return load_events(sim_dir)


@pytest.fixture
def stream_env(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> Callable[..., StreamEnv]:
    """Factory: a fresh deployment with unique topics; ``store_url`` overrides SQLite."""

    def make(store_url: str | None = None, **sections: dict) -> StreamEnv:
        base = unique_name("it")
        root = tmp_path / "env"
        root.mkdir()
        data = to_dict(AppConfig())
        data["kafka"].update(
            bootstrap=kafka_bootstrap,
            group_id=f"{base}.g",
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            poll_timeout_ms=200,
            max_poll_records=1000,
        )
        data["topics"].update(
            impressions=f"{base}.imp",
            clicks=f"{base}.clk",
            conversions=f"{base}.cnv",
            examples=f"{base}.ex",
            dlq=f"{base}.dlq",
            partitions=PARTITIONS,
        )
        data["store"]["url"] = store_url or f"sqlite:///{root / 'state.db'}"
        data["archive"].update(dir=str(root / "archive"), flush_rows=400, flush_seconds=1.0)
        data["metrics"]["progress_interval_s"] = 0.0
        for sec, values in sections.items():
            data[sec].update(values)
        return write_env(root, data)

    return make


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen]]:
    """Child processes of a test, killed (by pid) if still running at teardown."""
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
