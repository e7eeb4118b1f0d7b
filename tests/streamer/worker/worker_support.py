"""Helpers of the worker tests: a small base model, joiner-format examples, deployments."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from checkpoints import save_checkpoint
from lt4rec.config import AppConfig, DataConfig, JoinerConfig, ModelConfig, to_dict
from lt4rec.data import FeatureSpec, field_schema
from lt4rec.data.encode import fit_normalizer
from lt4rec.data.io import read_examples
from lt4rec.models import build_model
from streamer.delivery import origin_headers
from streamer.replay import read_table
from tests.streamer.integration.streamer_it_support import StreamEnv, expected_labels, write_env

MODEL = ModelConfig(embedding_dim=4, bottom=(16, 8), tower=(4,))
DATA = DataConfig(hash_buckets=1009, batch_size=256)
JOIN_PARTITIONS = 4  # join partitions the synthetic examples claim to come from


def base_checkpoint(sim_dir: Path, path: Path, seed: int = 0) -> Path:
    """An untrained sparse-shared model with different random masks per task (density ~0.5),
    the simulator's spec and a normalizer fitted on its train split."""
    spec = FeatureSpec.load(sim_dir / "spec.json")
    norm = fit_normalizer(read_examples(sim_dir / "train.parquet", spec), spec)
    torch.manual_seed(seed)
    model = build_model(MODEL, field_schema(spec, DATA))
    g = torch.Generator().manual_seed(seed + 1)
    for task in ("ctr", "cvr"):
        masks = {
            k: (torch.rand(m.shape, generator=g) < 0.5).float()
            for k, m in model.masks()[task].items()
        }
        model.set_masks(task, masks)
    cfg = AppConfig(model=MODEL, data=DATA)
    return save_checkpoint(path, model, config=cfg, spec=spec, normalizer=norm)


@dataclass(frozen=True)
class ExampleRow:
    key: bytes
    value: bytes
    src: int  # join partition
    seq: int

    def headers(self, policy: str = "wait_full") -> list[tuple[str, bytes]]:
        return origin_headers(self.src, self.seq, policy.encode())


def example_rows(sim_dir: Path, limit: int | None = None) -> list[ExampleRow]:
    """The ``final`` examples a ``wait_full`` joiner would emit for the simulated log, in
    label-time order, with origins spread over :data:`JOIN_PARTITIONS` join partitions."""
    table, spec = read_table(sim_dir)
    labels = expected_labels(sim_dir, JoinerConfig()).set_index("impression_id")
    rows = table.to_pylist()
    feats = [c for c in spec.feature_columns if c not in ("user_id", "item_id", spec.time)]
    out = []
    for r in rows:
        lab = labels.loc[r["impression_id"]]
        click_ts = None if pd.isna(lab.click_ts) else int(lab.click_ts)
        conv_ts = None if pd.isna(lab.conversion_ts) else int(lab.conversion_ts)
        label_ts = conv_ts or click_ts or r["ts"]
        body = {
            "impression_id": r["impression_id"], "kind": "final", "ts": r["ts"],
            "label_ts": label_ts, "user_id": str(r["user_id"]), "item_id": str(r["item_id"]),
            "features": {f: r[f] for f in feats if r[f] is not None},
            "click": int(lab.click), "conversion": int(lab.conversion),
            "click_ts": click_ts, "conversion_ts": conv_ts,
        }  # fmt: skip
        out.append((label_ts, r["impression_id"], body))
    out.sort(key=lambda t: (t[0], t[1]))
    if limit is not None:
        out = out[:limit]
    seqs = [0] * JOIN_PARTITIONS
    result = []
    for i, (_, iid, body) in enumerate(out):
        src = i % JOIN_PARTITIONS
        result.append(
            ExampleRow(f"{iid}:final".encode(), json.dumps(body).encode(), src, seqs[src])
        )
        seqs[src] += 1
    return result


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
