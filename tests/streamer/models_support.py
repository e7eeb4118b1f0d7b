"""Test support: registries holding small servable versions, and their configs.

``serving_config`` is a full AppConfig (small model, unique models topic, registry in
``db_url`` or a SQLite file) written to a TOML file, so a test can hand the same config to
an in-process object and to a ``lt4rec`` subprocess.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from checkpoints import Registry, VersionInfo, save_checkpoint
from lt4rec.config import AppConfig, load_app_config, to_dict
from lt4rec.testing.serving import SERVE_SPEC, random_served_model, small_config


@dataclass(frozen=True)
class ServingEnv:
    cfg: AppConfig
    path: Path  # the TOML file of ``cfg``

    def registry(self) -> Registry:
        return Registry(self.cfg.registry)


def serving_config(
    root: Path, bootstrap: str, models_topic: str, db_url: str | None = None, **sections: Any
) -> ServingEnv:
    """A config for the notices / CLI / server tests under ``root``."""
    data = to_dict(small_config())
    data["kafka"].update(bootstrap=bootstrap, bootstrap_timeout_ms=10_000, poll_timeout_ms=200)
    data["topics"]["models"] = models_topic
    data["registry"].update(
        url=db_url or f"sqlite:///{root / 'registry.db'}", dir=str(root / "models")
    )
    data["serve"].update(port=0, registry_poll_s=2.0)
    for sec, values in sections.items():
        data[sec].update(values)
    path = root / "lt4rec.toml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data))
    return ServingEnv(load_app_config(path), path)


def save_version(reg: Registry, cfg: AppConfig, seed: int, kind: str = "offline") -> VersionInfo:
    """A servable ``sparse_sharing`` version whose predictions depend on ``seed``."""
    model, normalizer = random_served_model(cfg, SERVE_SPEC, seed)
    return reg.save(
        kind,
        lambda p: save_checkpoint(
            p, model, config=cfg, spec=SERVE_SPEC.to_dict(), normalizer=normalizer.to_dict()
        ),
        model_name=cfg.model.name,
        metrics={"seed": seed},
    )


def corrupt(path: str | Path, offset: int | None = None) -> None:
    """Flip one byte of a file (in the middle by default)."""
    p = Path(path)
    size = p.stat().st_size
    at = size // 2 if offset is None else offset
    with p.open("r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))
