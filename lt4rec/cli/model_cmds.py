"""Model-side commands: ``simulate`` and ``fit``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the model-side commands to ``app``."""
