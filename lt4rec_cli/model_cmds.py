"""Model-side commands: ``simulate`` (simulate_cmd) and ``fit`` (fit_cmd)."""

from __future__ import annotations

import typer

from lt4rec_cli import fit_cmd, simulate_cmd


def register(app: typer.Typer) -> None:
    """Add the model-side commands to ``app``."""
    simulate_cmd.register(app)
    fit_cmd.register(app)
