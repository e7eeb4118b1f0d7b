"""Options and helpers shared by every ``lt4rec`` sub-command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

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


def load_cli_config(config: Path | None, sets: list[str] | None) -> AppConfig:
    """Load the effective configuration or fail the command with a message naming the key."""
    try:
        return load_app_config(config, sets or [])
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config/--set") from exc


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` to stderr and return an Exit to raise (clear errors, no traceback)."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def configure_logging(level: str) -> None:
    """Configure logging; kafka-python's own (noisy, mostly transient) messages are shown
    only with ``--log-level info`` or ``debug``: real failures surface as errors here."""
    lvl = getattr(logging, level.upper(), logging.WARNING)
    logging.basicConfig(level=lvl, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if lvl >= logging.WARNING:
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
