"""``lt4rec models list|show|publish|rollback|notify``: the version registry by hand.

``publish`` and ``rollback`` change the version in service (one registry transaction, see
:mod:`checkpoints.publish`) and announce it on ``topics.models``
(:class:`streamer.notices.NoticePublisher`). When the broker is down the publication still
holds: the command says so and exits 1; the notice is re-sent by the next ``publish``,
``rollback`` or ``notify``, and servers also find it in the registry (``serve.registry_poll_s``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from lt4rec_cli.common import ConfigOpt, SetOpt, fail, load_cli_config

app = typer.Typer(help="List, inspect, publish and roll back model versions.", no_args_is_help=True)

VersionArg = Annotated[int, typer.Argument(help="Registry version.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (kept in the registry).")]
NoNotifyOpt = Annotated[
    bool,
    typer.Option("--no-notify", help="Only record it in the registry; send no notice now."),
]
OnnxOpt = Annotated[
    Path | None,
    typer.Option(
        "--onnx-repo",
        help="Also export the version as ONNX into this Triton-style repository "
        "(<repo>/<model>/<version>/model.onnx).",
    ),
]


def _time(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _open(config: Path | None, sets: list[str] | None) -> Any:
    from checkpoints import Registry
    from checkpoints.db import DatabaseError

    cfg = load_cli_config(config, sets)
    try:
        return cfg, Registry(cfg.registry)
    except DatabaseError as exc:
        raise fail(str(exc), 1) from exc


@app.command("list")
def list_command(
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option("--limit", help="Newest N versions.", min=1)] = 50,
    status: Annotated[
        list[str] | None, typer.Option("--status", help="Only this status (repeatable).")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Versions newest first; a star marks the one in service."""
    from checkpoints.schema import STATUSES

    bad = [s for s in status or [] if s not in STATUSES]
    if bad:
        raise fail(f"unknown status {bad[0]!r}; one of {', '.join(STATUSES)}")
    _, reg = _open(config, set_)
    try:
        versions = reg.versions(statuses=status or None, limit=limit)
        current = reg.current()
    finally:
        reg.close()
    serving = current.version.version if current else None
    if as_json:
        rows = [{**v.to_dict(), "in_service": v.version == serving} for v in versions]
        typer.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    typer.echo(f"{'':1} {'version':>7} {'kind':8} {'status':9} {'parent':>6} "
               f"{'created (UTC)':19} {'size':>9} {'sha256':12} reason")  # fmt: skip
    for v in versions:
        mark = "*" if v.version == serving else ""
        typer.echo(
            f"{mark:1} {v.version:>7} {v.kind:8} {v.status:9} {v.parent or '-':>6} "
            f"{_time(v.created):19} {v.size or '-':>9} {(v.sha256 or '-')[:12]:12} "
            f"{v.reason[:60]}"
        )


@app.command("show")
def show_command(
    version: VersionArg,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """One version: its row, metrics and publications."""
    from checkpoints import RegistryError

    _, reg = _open(config, set_)
    try:
        info = reg.get(version)
        pubs = [p for p in reg.publications() if p.version.version == version]
        current = reg.current()
    except RegistryError as exc:
        raise fail(str(exc)) from exc
    finally:
        reg.close()
    data = {
        **info.to_dict(),
        "in_service": current is not None and current.version.version == version,
        "publications": [
            {"id": p.id, "action": p.action, "published_at": p.published_at,
             "reason": p.reason, "notified": p.notified}
            for p in pubs
        ],
    }  # fmt: skip
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    for key in ("version", "kind", "status", "parent", "model_name", "path", "sha256", "size"):
        typer.echo(f"{key:13} {data[key]}")
    typer.echo(f"{'created':13} {_time(info.created)} UTC")
    typer.echo(f"{'data range':13} {info.data_first_ts} .. {info.data_last_ts} (event ms)")
    typer.echo(f"{'in service':13} {'yes' if data['in_service'] else 'no'}")
    if info.reason:
        typer.echo(f"{'reason':13} {info.reason}")
    for k, v in sorted(info.metrics.items()):
        typer.echo(f"  metric {k} = {v}")
    for p in data["publications"]:
        typer.echo(f"  publication {p['id']}: {p['action']} at {_time(p['published_at'])} UTC "
                   f"notified={p['notified']} {p['reason']}")  # fmt: skip


def _announce(cfg: Any, reg: Any, change: str, version: int | None, reason: str,
              notify: bool) -> Any:  # fmt: skip
    """Publish / roll back, then send the notice; one-line errors."""
    from checkpoints import CorruptCheckpointError, RegistryError, publish, rollback
    from streamer.notices import NoticeError, NoticePublisher

    publisher = NoticePublisher(cfg.kafka, cfg.topics, reg)
    try:
        try:
            if change == "publish":
                assert version is not None
                notice = publish(reg, version, reason)
            else:
                notice = rollback(reg, version, reason)
        except (RegistryError, CorruptCheckpointError) as exc:
            raise fail(f"{change} refused: {exc}") from exc
        typer.echo(
            f"{change}: version {notice.version} is in service (publication {notice.publication})"
        )
        if notify:
            try:
                publisher.start()  # sends this notice (pending) and any earlier unsent one
            except (NoticeError, OSError) as exc:
                raise fail(f"the notice was not sent: {exc}", 1) from exc
            except Exception as exc:  # kafka-python errors outside NoticeError (admin client)
                raise fail(f"the notice was not sent: {type(exc).__name__}: {exc}", 1) from exc
            typer.echo(f"{change}: notice sent to {cfg.topics.models}")
        return notice
    finally:
        publisher.close()


@app.command("publish")
def publish_command(
    version: Annotated[int, typer.Argument(help="Registry version (ready or published).")],
    reason: ReasonOpt = "manual",
    no_notify: NoNotifyOpt = False,
    onnx_repo: OnnxOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Verify VERSION's file and put it in service; announce it to servers and workers."""
    cfg, reg = _open(config, set_)
    try:
        notice = _announce(cfg, reg, "publish", version, reason, not no_notify)
    finally:
        reg.close()
    if onnx_repo is not None:
        _export_onnx(notice.path, notice.sha256, notice.model_name, notice.version, onnx_repo)


@app.command("rollback")
def rollback_command(
    version: Annotated[
        int | None,
        typer.Argument(help="Version to return to (default: the one before the current)."),
    ] = None,
    reason: ReasonOpt = "rollback",
    no_notify: NoNotifyOpt = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Re-publish an older version everywhere (a new publication of it)."""
    cfg, reg = _open(config, set_)
    try:
        _announce(cfg, reg, "rollback", version, reason, not no_notify)
    finally:
        reg.close()


@app.command("notify")
def notify_command(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Send the notice of the version in service if it was never confirmed sent."""
    from streamer.notices import NoticePublisher

    cfg, reg = _open(config, set_)
    publisher = NoticePublisher(cfg.kafka, cfg.topics, reg)
    try:
        sent = publisher.start()
    except Exception as exc:  # NoticeError, kafka-python admin errors
        raise fail(f"the notice was not sent: {type(exc).__name__}: {exc}", 1) from exc
    finally:
        publisher.close()
        reg.close()
    typer.echo(f"notify: {len(sent)} pending notice(s) sent" if sent else "notify: nothing pending")


@app.command("export-onnx")
def export_onnx_command(
    version: VersionArg,
    repo: Annotated[Path, typer.Option("--repo", help="Triton-style model repository.")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Export VERSION's per-task sparse subnetworks as ONNX, verified with onnxruntime."""
    from checkpoints import RegistryError

    _, reg = _open(config, set_)
    try:
        info = reg.get(version)
    except RegistryError as exc:
        raise fail(str(exc)) from exc
    finally:
        reg.close()
    if info.path is None or info.sha256 is None:
        raise fail(f"version {version} ({info.status}) has no file")
    _export_onnx(info.path, info.sha256, info.model_name, info.version, repo)


def _export_onnx(path: str, sha256: str, name: str, version: int, repo: Path) -> None:
    from checkpoints import CorruptCheckpointError
    from streamer.serve.onnx_export import OnnxExportError, export_version

    try:
        out = export_version(path, sha256, name, version, repo)
    except (CorruptCheckpointError, OnnxExportError, OSError) as exc:
        raise fail(f"ONNX export of version {version} failed: {exc}", 1) from exc
    typer.echo(f"onnx: version {version} -> {out}")


def register(root: typer.Typer) -> None:
    """Add the ``models`` command group to ``root``."""
    root.add_typer(app, name="models")
