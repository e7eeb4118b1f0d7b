"""Options and helpers shared by every ``lt4rec`` sub-command.

Bad arguments fail before any work starts with one ``error: ...`` line on stderr and exit
status 2 (:func:`fail`): configuration errors (:func:`load_cli_config`), output paths that
cannot be written (:func:`check_output_file`, :func:`check_output_dir`), unknown log levels
(:func:`check_log_level`).
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from lt4rec.config import AppConfig, ConfigError, load_app_config

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="TOML configuration file (sections as in `lt4rec config show`)."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override one key, e.g. --set train.lr=0.01 (repeatable).",
        metavar="SECTION.KEY=VALUE",
    ),
]
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

LogLevelOpt = Annotated[
    str, typer.Option("--log-level", help="debug, info, warning, error or critical.")
]


def load_cli_config(config: Path | None, sets: list[str] | None) -> AppConfig:
    """Load the effective configuration or fail the command with a message naming the key."""
    try:
        return load_app_config(config, sets or [])
    except ConfigError as exc:
        raise fail(f"--config/--set: {exc}") from exc


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` to stderr and return an Exit to raise (clear errors, no traceback)."""
    one_line = " ".join(message.split())
    typer.secho(f"error: {one_line}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def check_log_level(level: str) -> int:
    """The ``logging`` level named ``level`` (any case); fails the command for other names."""
    if level.lower() not in LOG_LEVELS:
        raise fail(f"--log-level {level!r} is not one of {', '.join(LOG_LEVELS)}")
    return int(getattr(logging, level.upper()))


def _probe_writable(folder: Path, option: str, path: Path) -> None:
    """Create and remove a temporary file in ``folder`` (what the command will do later)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".lt4rec-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise fail(f"{option} {path} is not writable: {exc.strerror or exc}") from exc


def _make_dir(folder: Path, option: str, path: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"{option} {path}: cannot create {folder}: {exc.strerror or exc}") from exc


def check_output_file(path: Path, option: str) -> None:
    """Fail now unless a file can be written at ``path`` (creates its missing parents).

    Called before the work starts, so that a directory or an unwritable location is a
    one-line error instead of a traceback at the end of a long run.
    """
    if path.is_dir():
        raise fail(f"{option} {path} is a directory, expected a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise fail(f"{option} {path} is not writable")
    _make_dir(path.parent, option, path)
    _probe_writable(path.parent, option, path)


def check_output_dir(path: Path, option: str) -> None:
    """Fail now unless ``path`` is (or can be created as) a writable directory."""
    if path.exists() and not path.is_dir():
        raise fail(f"{option} {path} exists and is not a directory")
    _make_dir(path, option, path)
    _probe_writable(path, option, path)


def setup_logging(level: str) -> None:
    """Configure logging; kafka-python's own (noisy, mostly transient) messages are shown
    only with ``--log-level info`` or ``debug``: real failures surface as errors here.
    An unknown level fails the command (:func:`check_log_level`)."""
    lvl = check_log_level(level)
    logging.basicConfig(level=lvl, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if lvl >= logging.WARNING:
        logging.getLogger("kafka").setLevel(logging.CRITICAL)


def stop_on_signals(what: str, doing: str, request_stop: Callable[[], None]) -> None:
    """SIGTERM / SIGINT ask a daemon to stop cleanly (``what: SIGTERM received, doing``)."""

    def stop(signum: int, _frame: Any) -> None:
        typer.echo(f"{what}: {signal.Signals(signum).name} received, {doing}", err=True)
        request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
