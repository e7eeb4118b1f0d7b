"""Verifying, loading and publishing registry versions.

* :func:`verify` reads a version's file and checks it twice: the registry's whole-file sha256
  and the checkpoint's own header checksum (:func:`~checkpoints.format.load_checkpoint`). Any
  mismatch is :class:`~checkpoints.format.CorruptCheckpointError`; the file is never trusted.
* :func:`load_newest_good` walks versions newest first and returns the first that verifies,
  marking each bad one ``corrupt`` with its reason (the caller logs and counts them).
* :func:`publish` / :func:`rollback` verify, then record a publication in ONE transaction (a
  publisher killed at any point leaves either the old or the new version in service) and
  return the :class:`Notice` to announce on ``topics.models``. The notice is sent by the
  streamer layer; an unsent one stays ``notified = false`` and is re-sent (:func:`pending_notices`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from checkpoints.format import Checkpoint, CorruptCheckpointError, load_checkpoint
from checkpoints.registry import (
    SERVABLE,
    Publication,
    Registry,
    RegistryError,
    VersionInfo,
    sha256_file,
)

log = logging.getLogger(__name__)
ACTIONS = ("publish", "rollback")
_NOTICE_TYPES: dict[str, type | tuple[type, ...]] = {
    "publication": int, "version": int, "kind": str, "path": str, "sha256": str,
    "parent": (int, type(None)), "action": str, "published_at": (int, float), "model_name": str,
}  # fmt: skip


@dataclass(frozen=True)
class Notice:
    """What ``topics.models`` carries: enough to fetch, verify and swap to a version.

    ``publication`` increases with every publish / rollback: a consumer swaps only to a
    notice whose ``publication`` is newer than the one it serves (re-sent and out-of-date
    notices are no-ops).
    """

    publication: int
    version: int
    kind: str
    path: str
    sha256: str
    parent: int | None
    action: str  # publish | rollback
    published_at: float
    model_name: str

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Notice:
        """Parse a notice; a malformed one (bad JSON, missing key, wrong type) is a
        ``ValueError`` naming the problem. Unknown extra keys are ignored."""
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            notice = cls(**{k: data[k] for k in cls.__dataclass_fields__})
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"malformed model notice: {exc!r}") from exc
        for key, types in _NOTICE_TYPES.items():
            value = getattr(notice, key)
            if isinstance(value, bool) or not isinstance(value, types):
                raise ValueError(f"malformed model notice: {key} = {value!r} has the wrong type")
        if notice.publication < 1 or notice.version < 1 or notice.action not in ACTIONS:
            raise ValueError(f"malformed model notice: {notice!r}")
        return notice

    @classmethod
    def of(cls, pub: Publication) -> Notice:
        v = pub.version
        assert v.path is not None and v.sha256 is not None
        return cls(
            pub.id, v.version, v.kind, v.path, v.sha256, v.parent, pub.action, pub.published_at,
            v.model_name,
        )  # fmt: skip


def verify_file(path: str | Path, sha256: str | None) -> Checkpoint:
    """Load ``path`` if its whole-file sha256 is ``sha256`` and its own checksum holds."""
    p = Path(path)
    if not p.is_file():
        raise CorruptCheckpointError(f"{p}: checkpoint file is missing")
    if sha256 is not None:
        digest, _ = sha256_file(p)
        if digest != sha256:
            raise CorruptCheckpointError(
                f"{p}: sha256 {digest[:12]}... does not match the published {sha256[:12]}..."
            )
    return load_checkpoint(p)


def verify(info: VersionInfo) -> Checkpoint:
    """:func:`verify_file` for a registry version (which must have a file)."""
    if info.path is None:
        raise CorruptCheckpointError(f"version {info.version} ({info.status}) has no file")
    return verify_file(info.path, info.sha256)


def load_newest_good(
    reg: Registry,
    kinds: Iterable[str] | None = None,
    statuses: Iterable[str] = SERVABLE,
    skipped: list[tuple[VersionInfo, str]] | None = None,
) -> tuple[VersionInfo, Checkpoint, list[tuple[VersionInfo, str]]] | None:
    """The newest version that verifies, plus the ``(version, reason)`` pairs skipped.

    Each skipped version is marked ``corrupt`` in the registry. None when nothing verifies;
    pass a ``skipped`` list to learn what was refused in that case too.
    """
    skipped = [] if skipped is None else skipped
    for info in reg.versions(kinds, statuses):
        try:
            ckpt = verify(info)
        except (CorruptCheckpointError, FileNotFoundError, OSError) as exc:
            reason = str(exc)
            log.error("version %d is unusable, skipping it: %s", info.version, reason)
            reg.mark(info.version, "corrupt", reason[:500])
            skipped.append((info, reason))
            continue
        return info, ckpt, skipped
    return None


def publish(reg: Registry, version: int, reason: str = "", action: str = "publish") -> Notice:
    """Verify ``version`` and put it in service; returns the notice to announce."""
    info = reg.get(version)
    if info.status not in SERVABLE:
        raise RegistryError(
            f"version {version} is {info.status}: only ready versions are published"
        )
    try:
        verify(info)
    except CorruptCheckpointError as exc:
        reg.mark(version, "corrupt", str(exc)[:500])
        raise
    return Notice.of(reg.add_publication(version, action, reason))


def rollback(reg: Registry, version: int | None = None, reason: str = "") -> Notice:
    """Re-publish ``version``, by default the one in service before the current one."""
    if version is None:
        current = reg.current()
        older = [
            p
            for p in reg.publications()
            if current and p.version.version != current.version.version
        ]
        if not older:
            raise RegistryError("nothing to roll back to: no earlier published version")
        version = older[0].version.version
    return publish(reg, version, reason or "rollback", action="rollback")


def pending_notices(reg: Registry) -> list[Notice]:
    """The notice of the publication in service when it is not confirmed sent yet.

    Only the current one matters: consumers apply a notice only when its ``publication`` id
    is newer than the one they serve, so a superseded, unsent notice needs no re-send.
    """
    current = reg.current()
    return [Notice.of(current)] if current is not None and not current.notified else []
