"""Streaming commands: ``streamer`` (the joiner daemon) and ``stream replay``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the streaming commands to ``app``."""
