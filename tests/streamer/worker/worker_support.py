"""Helpers of the worker tests: a small base model, deployments, producing examples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lt4rec.config import DataConfig, ModelConfig, to_dict
from streamer.worker import synthetic
from streamer.worker.synthetic import ExampleRow, example_rows
from tests.streamer.integration.streamer_it_support import StreamEnv, write_env

MODEL = ModelConfig(embedding_dim=4, bottom=(16, 8), tower=(4,))
DATA = DataConfig(hash_buckets=1009, batch_size=256)

__all__ = ["DATA", "MODEL", "ExampleRow", "base_checkpoint", "example_rows", "produce"]


def base_checkpoint(sim_dir: Path, path: Path, seed: int = 0) -> Path:
    """The small untrained sparse-shared model of the tests (random masks, density ~0.5)."""
    return synthetic.base_checkpoint(sim_dir, path, MODEL, DATA, seed)


def produce(
    bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes, list, int]]
) -> None:
    """Produce ``(key, value, headers, partition)`` records in order and flush."""
    from kafka import KafkaProducer

    prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for key, value, headers, part in records:
            prod.send(topic, key=key, value=value, headers=headers, partition=part)
        prod.flush()
    finally:
        prod.close()


def worker_env(env: StreamEnv, name: str, init: Path, **worker: object) -> StreamEnv:
    """A worker deployment on ``env``'s topics: own group, registry, start model ``init``."""
    data = to_dict(env.cfg)
    base = env.path.parent / name
    base.mkdir()
    data["worker"].update(
        group_id=f"{env.cfg.kafka.group_id}-{name}", init_checkpoint=str(init), batch_size=128,
        checkpoint_examples=1000, checkpoint_seconds=30.0, max_wait_ms=200,
    )  # fmt: skip
    data["worker"].update(worker)
    data["registry"].update(url=f"sqlite:///{base / 'registry.db'}", dir=str(base / "models"))
    return write_env(base, data)


def spawn_worker(env: StreamEnv, idle_s: float, log: Path) -> subprocess.Popen:
    """``lt4rec worker`` as a child process (stderr to ``log``)."""
    cmd = [
        sys.executable, "-m", "lt4rec_cli.main", "worker", "--config", str(env.path),
        "--exit-when-idle", str(idle_s), "--log-level", "warning",
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("ab"))
