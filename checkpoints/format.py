"""The checkpoint file format: everything needed to rebuild, serve and resume a model.

Layout of one file (little endian)::

    magic   8 bytes  b"LT4RCKPT"
    version u32      FORMAT_VERSION
    meta_len u64     length of the JSON metadata
    blob_len u64     length of the safetensors blob
    sha256  32 bytes over meta + blob
    meta    JSON     model name/config, field schema, feature spec, normalizer, metrics, step...
    blob    safetensors: "model/<name>" state dict (mask buffers included), "mask/<task>/<layer>"
                         optional "optim/<key>" optimiser tensors and "aux/<key>" tensors of
                         other state (e.g. the online worker's delayed-feedback heads)

Writes are atomic (temporary file in the same directory, fsync, rename, fsync of the
directory). A truncated, bit-flipped, foreign or wrong-version file is refused with
:class:`CorruptCheckpointError` naming the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import IO, Any

import torch
from safetensors.torch import save as st_save
from torch import nn

from checkpoints.blob import read_blob, safetensors_views, update_hash

MAGIC = b"LT4RCKPT"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIQQ32s")


class CorruptCheckpointError(ValueError):
    """The file is not a readable checkpoint of this format version (reason in the message)."""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint; :meth:`build_model` rebuilds the module with its weights."""

    model_name: str
    model_config: dict[str, Any]
    schema: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    masks: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    spec: dict[str, Any] | None = None
    normalizer: dict[str, Any] | None = None
    config: dict[str, Any] | None = None  # the whole AppConfig when one was given
    optimizer: dict[str, torch.Tensor] | None = None
    aux: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    step: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = FORMAT_VERSION

    def field_schema(self) -> Any:
        """The :class:`~lt4rec.data.batch.FieldSchema` the model was built for."""
        from lt4rec.data.batch import FieldSchema

        s = self.schema
        return FieldSchema(
            sparse=tuple(s["sparse"]),
            multi=tuple(s["multi"]),
            dense=tuple(s["dense"]),
            hash_buckets=int(s["hash_buckets"]),
            multi_max_len=int(s["multi_max_len"]),
        )

    def build_model(self) -> nn.Module:
        """Rebuild the model (registry) and load the saved weights and mask buffers."""
        from lt4rec.config.loader import build
        from lt4rec.config.model import LEGACY_MODEL_KEYS, ModelConfig
        from lt4rec.models import build_model

        cfg = build(ModelConfig, {**LEGACY_MODEL_KEYS, **self.model_config}, "model")
        model = build_model(cfg, self.field_schema())
        model.load_state_dict(self.state_dict)
        return model


def _plain(obj: Any) -> Any:
    if obj is None:
        return None
    if hasattr(obj, "to_dict") and not isinstance(obj, Mapping):
        return _plain(obj.to_dict())
    if is_dataclass(obj) and not isinstance(obj, type):
        return _plain(asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, float | int | str | bool):
        return obj
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    raise TypeError(f"checkpoint metadata: cannot store {type(obj).__name__}")


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    config: Any,
    spec: Mapping[str, Any] | Any | None = None,
    normalizer: Mapping[str, Any] | Any | None = None,
    masks: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    extra: Mapping[str, Any] | None = None,
    optimizer: Mapping[str, torch.Tensor] | None = None,
    metrics: Mapping[str, Any] | None = None,
    step: int = 0,
    aux: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` atomically to ``path``.

    ``config`` is an ``AppConfig`` (its ``model`` section is used to rebuild) or a
    ``ModelConfig``. ``spec`` / ``normalizer`` may be plain dicts or objects with
    ``to_dict()``. ``masks`` defaults to the model's own ``masks()``.
    """
    model_cfg = getattr(config, "model", config)
    app = _plain(config) if hasattr(config, "model") else None
    schema = getattr(model, "schema", None)
    if schema is None:
        raise ValueError("model has no .schema (FieldSchema); is it from lt4rec.models?")
    if masks is None:
        masks_fn = getattr(model, "masks", None)
        masks = masks_fn() if callable(masks_fn) else {}
    meta = {
        "model_name": getattr(model_cfg, "name", type(model).__name__),
        "model_config": _plain(model_cfg),
        "schema": _plain(schema),
        "spec": _plain(spec),
        "normalizer": _plain(normalizer),
        "config": app,
        "metrics": _plain(dict(metrics or {})),
        "step": int(step),
        "extra": _plain(dict(extra or {})),
        "has_optimizer": optimizer is not None,
    }
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        tensors[f"model/{k}"] = v.detach().cpu().contiguous()
    for task, layers in masks.items():
        for name, m in layers.items():
            tensors[f"mask/{task}/{name}"] = m.detach().cpu().to(torch.float32).clone()
    for k, v in (optimizer or {}).items():
        tensors[f"optim/{k}"] = v.detach().cpu().contiguous()
    for k, v in (aux or {}).items():
        tensors[f"aux/{k}"] = v.detach().cpu().contiguous()
    blob = st_save(tensors)
    meta_bytes = json.dumps(meta, sort_keys=True).encode("utf-8")
    digest = hashlib.sha256(meta_bytes + blob).digest()
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, len(meta_bytes), len(blob), digest)
    return _atomic_write(Path(path), [header, meta_bytes, blob])


def _atomic_write(path: Path, chunks: list[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; checkpoints are shared artefacts
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)
    return path


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (after a rename: make the new entry durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_header(f: IO[bytes], p: Path) -> tuple[int, int, int, bytes]:
    """``(version, meta_len, blob_len, digest)`` of the file header; refuses foreign files."""
    head = f.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise CorruptCheckpointError(f"{p}: truncated (header incomplete, {len(head)} bytes)")
    magic, version, meta_len, blob_len, digest = _HEADER.unpack(head)
    if magic != MAGIC:
        raise CorruptCheckpointError(f"{p}: not an lt4rec checkpoint (bad magic {magic!r})")
    if version != FORMAT_VERSION:
        raise CorruptCheckpointError(
            f"{p}: unsupported format version {version} (this build reads {FORMAT_VERSION})"
        )
    return version, meta_len, blob_len, digest


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a checkpoint without reading its tensors (for status tools).

    Not verified (the checksum covers the tensors too): use :func:`load_checkpoint` before
    trusting the file. Raises :class:`CorruptCheckpointError` when even the header is bad.
    """
    p = Path(path)
    with p.open("rb") as f:
        _version, meta_len, _blob_len, _digest = _read_header(f, p)
        raw = f.read(meta_len)
    try:
        meta: dict[str, Any] = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptCheckpointError(f"{p}: unreadable metadata ({exc})") from exc
    return meta


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and verify a checkpoint; raise :class:`CorruptCheckpointError` when it is bad."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} does not exist")
    with p.open("rb") as f:
        version, meta_len, blob_len, digest = _read_header(f, p)
        body_len = os.fstat(f.fileno()).st_size - _HEADER.size
        if body_len != meta_len + blob_len:
            raise CorruptCheckpointError(
                f"{p}: truncated or padded (body {body_len} bytes, header says "
                f"{meta_len + blob_len})"
            )
        meta_bytes = f.read(meta_len)
        blob = read_blob(f, blob_len)  # see checkpoints.blob: no copies, short GIL holds
    h = hashlib.sha256(meta_bytes)
    update_hash(h, blob)
    if len(meta_bytes) + len(blob) != meta_len + blob_len or h.digest() != digest:
        raise CorruptCheckpointError(f"{p}: sha256 checksum mismatch (file is corrupted)")
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
        tensors = safetensors_views(blob)
    except (ValueError, UnicodeDecodeError, RuntimeError) as exc:
        raise CorruptCheckpointError(f"{p}: unreadable content ({exc})") from exc
    state = {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}
    masks: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("mask/"):
            _, task, name = k.split("/", 2)
            masks.setdefault(task, {})[name] = v
    optim = {k[6:]: v for k, v in tensors.items() if k.startswith("optim/")}
    aux = {k[4:]: v for k, v in tensors.items() if k.startswith("aux/")}
    return Checkpoint(
        model_name=meta["model_name"],
        model_config=meta["model_config"],
        schema=meta["schema"],
        state_dict=state,
        masks=masks,
        spec=meta.get("spec"),
        normalizer=meta.get("normalizer"),
        config=meta.get("config"),
        optimizer=optim if meta.get("has_optimizer") else None,
        aux=aux,
        metrics=meta.get("metrics", {}),
        step=int(meta.get("step", 0)),
        extra=meta.get("extra", {}),
        version=version,
    )
