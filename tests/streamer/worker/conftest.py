"""Fixtures of the worker tests: the simulated data set's examples and a small base model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.streamer.worker.worker_support import ExampleRow, base_checkpoint, example_rows


@pytest.fixture(scope="session")
def examples(sim_dir: Path) -> list[ExampleRow]:
    """Every impression of the simulated log as a ``final`` example (joiner format)."""
    return example_rows(sim_dir)


@pytest.fixture(scope="session")
def base_ckpt(sim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained sparse-shared base model for the simulator's spec."""
    return base_checkpoint(sim_dir, tmp_path_factory.mktemp("base") / "base.ckpt")
