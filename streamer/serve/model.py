"""One loaded, verified, ready-to-answer model version of a prediction server.

:func:`load_served` reads a published version (whole-file sha256 of the notice, then the
checkpoint's own checksum: :func:`checkpoints.verify_file`), rebuilds the model, and for the
``sparse`` engine exports each task's masked MLP as a compact :class:`SparseTaskNet` (the
shared embedding block stays as it is). It runs a warm-up prediction and checks the outputs
are finite before the server may swap to it. The ``dense`` engine keeps the trained model
(``W ⊙ M`` computed at every call): the baseline of the benchmarks, and the engine of
models that have no per-task export.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import torch

from checkpoints import Checkpoint, CorruptCheckpointError, Notice, verify_file
from lt4rec.config import ServeConfig
from lt4rec.data.batch import TASKS, Batch
from lt4rec.data.normalizer import Normalizer
from lt4rec.data.spec import FeatureSpec, SpecError
from lt4rec.models import SparseSharing
from lt4rec.sparse import SparseTaskNet, export_task
from streamer.serve.instances import Columns, InstanceEncoder


class UnservableError(ValueError):
    """A checkpoint that verifies but cannot be served (no feature spec, bad outputs...)."""


@dataclass(frozen=True)
class ModelInfo:
    """What ``GET /model`` reports about the version being served."""

    version: int
    publication: int
    action: str
    kind: str
    parent: int | None
    model_name: str
    sha256: str
    path: str
    published_at: float
    loaded_at: float
    load_seconds: float
    engine: str
    features: dict[str, list[str]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ServedModel:
    """Validates, encodes and scores instances with one version (immutable once built)."""

    def __init__(self, ckpt: Checkpoint, notice: Notice, cfg: ServeConfig) -> None:
        t0 = time.perf_counter()
        if ckpt.spec is None or ckpt.normalizer is None:
            raise UnservableError(
                f"version {notice.version}: checkpoint has no feature spec / normalizer"
            )
        try:
            spec = FeatureSpec.from_dict(ckpt.spec)
            normalizer = Normalizer.from_dict(ckpt.normalizer)
        except (SpecError, ValueError, TypeError) as exc:
            raise UnservableError(f"version {notice.version}: {exc}") from exc
        schema = ckpt.field_schema()
        if (schema.sparse, schema.multi, schema.dense) != (spec.sparse, spec.multi, spec.dense):
            raise UnservableError(f"version {notice.version}: spec and model fields differ")
        model = ckpt.build_model().eval()
        self.encoder = InstanceEncoder(spec, schema, normalizer, cfg)
        self.model = model
        self.engine = cfg.engine
        self.nets: dict[str, SparseTaskNet] = {}
        export = getattr(model, "export_task_layers", None)
        if cfg.engine == "sparse" and callable(export):
            for task in TASKS:
                net = export_task(export(task), csr_threshold=cfg.csr_threshold, device="cpu")
                self.nets[task] = net.eval()
        else:
            self.engine = "dense"
        tasks = {t: _task_stats(n) for t, n in self.nets.items()}
        self.check()
        self.info = ModelInfo(
            version=notice.version, publication=notice.publication, action=notice.action,
            kind=notice.kind, parent=notice.parent, model_name=notice.model_name,
            sha256=notice.sha256, path=notice.path, published_at=notice.published_at,
            loaded_at=time.time(), load_seconds=time.perf_counter() - t0, engine=self.engine,
            features={"sparse": list(spec.sparse), "multi": list(spec.multi),
                      "dense": list(spec.dense)},
            tasks=tasks,
        )  # fmt: skip

    @property
    def version(self) -> int:
        return self.info.version

    def predict(self, instances: list[Any]) -> dict[str, Any]:
        """``{"ctr", "cvr", "ctcvr": [N] probabilities, "model_version"}`` (validates first)."""
        return self.predict_columns(self.encoder.validate(instances))

    def predict_columns(self, cols: Columns) -> dict[str, Any]:
        probs = self.probabilities(self.encoder.encode(cols))
        return {
            "ctr": probs["ctr"].tolist(),
            "cvr": probs["cvr"].tolist(),
            "ctcvr": probs["ctcvr"].tolist(),
            "model_version": self.info.version,
        }

    @torch.inference_mode()
    def probabilities(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``{task: [B] probability}`` plus ``ctcvr = ctr * cvr``."""
        if self.nets:
            x = cast(SparseSharing, self.model).embed(batch)  # [B, in_dim]
            logits = {t: net(x) for t, net in self.nets.items()}  # {task: [B]}
        else:
            logits = self.model(batch)
        ctr, cvr = torch.sigmoid(logits["ctr"]), torch.sigmoid(logits["cvr"])
        return {"ctr": ctr, "cvr": cvr, "ctcvr": ctr * cvr}

    def check(self) -> None:
        """Warm up on an all-missing instance; the outputs must be finite probabilities."""
        out = self.probabilities(self.encoder.encode(self.encoder.validate([{}])))
        for task, p in out.items():
            if p.shape != (1,) or not bool(torch.isfinite(p).all()):
                raise UnservableError(f"{task} output {p.tolist()} is not a finite probability")


def _task_stats(net: SparseTaskNet) -> dict[str, Any]:
    st = net.stats()
    return {k: st[k] for k in ("original_params", "params", "nonzero_weights", "bytes")} | {
        "layers": [{k: ly[k] for k in ("shape", "density", "format")} for ly in st["layers"]]
    }


def load_served(notice: Notice, cfg: ServeConfig) -> ServedModel:
    """Verify ``notice``'s file (sha256 + checksum) and build the served model.

    Raises :class:`~checkpoints.CorruptCheckpointError` (bad / missing / foreign file) or
    :class:`UnservableError`; the caller keeps serving its current model either way.
    """
    ckpt = verify_file(notice.path, notice.sha256)
    try:
        return ServedModel(ckpt, notice, cfg)
    except (KeyError, RuntimeError) as exc:  # state dict / shapes that do not fit the config
        raise CorruptCheckpointError(f"version {notice.version}: cannot rebuild: {exc}") from exc
