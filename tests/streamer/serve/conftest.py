"""Fixtures of the serving tests: registries with small versions, in-process apps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from checkpoints import Notice, publish
from streamer.serve.app import create_app
from streamer.serve.metrics import ServeMetrics
from streamer.serve.swap import ModelSlot
from tests.streamer.models_support import ServingEnv, save_version, serving_config


@pytest.fixture
def local_env(tmp_path: Path) -> Callable[..., ServingEnv]:
    """Factory: a config with a SQLite registry (no broker needed for in-process tests)."""

    def make(**sections) -> ServingEnv:
        return serving_config(tmp_path / "env", "127.0.0.1:1", "t.unused.models", **sections)

    return make


@pytest.fixture
def published(local_env) -> Callable[..., tuple[ServingEnv, list[Notice]]]:
    """Factory: ``local_env`` with one published version per seed (notices, oldest first)."""

    def make(seeds=(1,), **sections) -> tuple[ServingEnv, list[Notice]]:
        env = local_env(**sections)
        reg = env.registry()
        try:
            notices = [publish(reg, save_version(reg, env.cfg, s).version) for s in seeds]
        finally:
            reg.close()
        return env, notices

    return make


@pytest.fixture
def client(published) -> Iterator[tuple[TestClient, ModelSlot, list[Notice]]]:
    """An in-process app serving version 1 (of seeds 1 and 2; version 2 published, unloaded)."""
    env, notices = published(seeds=(1, 2))
    slot = ModelSlot(env.cfg.serve, ServeMetrics())
    assert slot.apply(notices[0])
    with TestClient(create_app(env.cfg, slot, follow=False)) as c:
        yield c, slot, notices
