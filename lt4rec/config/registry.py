"""Configuration of the model version registry and its checkpoint files (``[registry]``)."""

from __future__ import annotations

from dataclasses import dataclass

from lt4rec.config.checks import require_finite


@dataclass(frozen=True)
class RegistryConfig:
    """Where versions are recorded (SQLAlchemy URL) and their checkpoint files kept.

    Every checkpoint the worker, the re-pruning job or ``lt4rec models`` writes is a version:
    one row in the registry database and one immutable, checksummed file under ``dir``.
    ``dir`` must be reachable by every process that loads models (worker, servers).
    """

    url: str = "sqlite:///runs/state/registry.db"
    dir: str = "runs/models"
    keep_last: int = 10  # retention: the newest N versions plus every published one
    # a staging row older than this is a writer that died before committing (cleaned up)
    staging_timeout_s: float = 3600.0
    # export every version a NoticePublisher announces as ONNX into this Triton-style
    # repository (<onnx_repo>/<model name>/<version>/model.onnx); "" = no export
    onnx_repo: str = ""

    def __post_init__(self) -> None:
        require_finite(self)
        if "://" not in self.url:
            raise ValueError(f"url {self.url!r} is not a SQLAlchemy URL")
        if not self.dir:
            raise ValueError("dir must not be empty")
        if self.keep_last < 1:
            raise ValueError("keep_last must be >= 1")
        if not self.staging_timeout_s > 0:
            raise ValueError("staging_timeout_s must be > 0")
