"""Inputs of worker tests and benchmarks: joiner-format examples and an untrained base model.

:func:`example_rows` builds the ``final`` examples a ``wait_full`` joiner emits for the
simulator's impressions (labels from the simulator's window-rule columns, which use the
joiner's default windows), in label-time order, with origins (join partition, outbox seq)
spread over ``join_partitions`` join partitions. It lets a test or a benchmark fill an
examples topic in a second instead of replaying and joining the whole log.
:func:`base_checkpoint` writes an untrained model for the simulator's spec with random
per-task masks, a start model for the worker without an offline fit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from checkpoints import save_checkpoint
from lt4rec.config import AppConfig, DataConfig, ModelConfig
from lt4rec.data import FeatureSpec, field_schema
from lt4rec.data.encode import fit_normalizer
from lt4rec.data.io import read_examples
from lt4rec.models import build_model
from streamer.delivery import origin_headers
from streamer.replay import read_table


@dataclass(frozen=True)
class ExampleRow:
    key: bytes
    value: bytes
    src: int  # join partition
    seq: int  # outbox seq in it

    def headers(self, policy: str = "wait_full") -> list[tuple[str, bytes]]:
        return origin_headers(self.src, self.seq, policy.encode())


def example_rows(
    sim_dir: Path, limit: int | None = None, join_partitions: int = 4
) -> list[ExampleRow]:
    """The simulated log's impressions as ``final`` examples (see module docstring)."""
    table, spec = read_table(sim_dir)
    feats = [c for c in spec.feature_columns if c not in ("user_id", "item_id", spec.time)]
    bodies = []
    for r in table.to_pylist():
        click_ts = r["click_ts"] if r["click"] else None
        conv_ts = r["conversion_ts"] if r["conversion"] else None
        label_ts = conv_ts or click_ts or r["ts"]
        body = {
            "impression_id": r["impression_id"], "kind": "final", "ts": r["ts"],
            "label_ts": label_ts, "user_id": str(r["user_id"]), "item_id": str(r["item_id"]),
            "features": {f: r[f] for f in feats if r[f] is not None},
            "click": int(r["click"]), "conversion": int(r["conversion"]),
            "click_ts": click_ts, "conversion_ts": conv_ts,
        }  # fmt: skip
        bodies.append((label_ts, r["impression_id"], body))
    bodies.sort(key=lambda t: (t[0], t[1]))
    if limit is not None:
        bodies = bodies[:limit]
    seqs = [0] * join_partitions
    out = []
    for i, (_, iid, body) in enumerate(bodies):
        src = i % join_partitions
        out.append(ExampleRow(f"{iid}:final".encode(), json.dumps(body).encode(), src, seqs[src]))
        seqs[src] += 1
    return out


def base_checkpoint(
    sim_dir: Path,
    path: Path,
    model: ModelConfig,
    data: DataConfig,
    seed: int = 0,
    density: tuple[float, float] = (0.5, 0.5),
) -> Path:
    """An untrained model for the simulator's spec (normalizer fitted on its train split);
    sparse sharing gets random masks of ``density`` (CTR, CVR), different per task."""
    spec = FeatureSpec.load(sim_dir / "spec.json")
    norm = fit_normalizer(read_examples(sim_dir / "train.parquet", spec), spec)
    torch.manual_seed(seed)
    net = build_model(model, field_schema(spec, data))
    g = torch.Generator().manual_seed(seed + 1)
    masks = net.masks()
    for task, d in zip(("ctr", "cvr"), density, strict=True):
        if task in masks:
            new = {
                k: (torch.rand(m.shape, generator=g) < d).float() for k, m in masks[task].items()
            }
            net.set_masks(task, new)  # type: ignore[operator]
    return save_checkpoint(
        path, net, config=AppConfig(model=model, data=data), spec=spec, normalizer=norm
    )
