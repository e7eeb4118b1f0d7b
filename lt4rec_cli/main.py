"""The ``lt4rec`` console script: one Typer app, one module per group of commands.

Modules that need Kafka (``streamer``) are imported lazily inside their commands, so the
model side never imports kafka-python.
"""

from __future__ import annotations

import typer

from lt4rec_cli import (
    config_cmd,
    model_cmds,
    models_cmd,
    pipeline_cmd,
    prune_cmd,
    scheduler_cmd,
    serve_cmd,
    stream_cmds,
    worker_cmds,
)

app = typer.Typer(
    name="lt4rec",
    help="Keep a CTR/CVR ranking model fresh with lottery-ticket sparse sharing.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(config_cmd.app, name="config")
model_cmds.register(app)
stream_cmds.register(app)
pipeline_cmd.register(app)
prune_cmd.register(app)
scheduler_cmd.register(app)
models_cmd.register(app)
serve_cmd.register(app)
worker_cmds.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
