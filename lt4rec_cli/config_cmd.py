"""``lt4rec config show``: print the effective configuration as TOML."""

from __future__ import annotations

import typer

from lt4rec.config import to_toml
from lt4rec_cli.common import ConfigOpt, SetOpt, load_cli_config

app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


@app.command("show")
def show(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Print the effective configuration (defaults filled in) as TOML."""
    typer.echo(to_toml(load_cli_config(config, set_)), nl=False)
