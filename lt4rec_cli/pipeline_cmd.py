"""``lt4rec run``: the main job on embedded defaults (see :mod:`streamer.pipeline`)."""

from __future__ import annotations

from typing import Annotated

import typer

from lt4rec_cli.common import ConfigOpt, SetOpt, fail, load_cli_config


def run(
    config: ConfigOpt = None,
    sets: SetOpt = None,
    stream: Annotated[
        bool,
        typer.Option(
            "--stream/--no-stream",
            help="Replay the simulated log through Kafka and join it (needs the broker).",
        ),
    ] = True,
) -> None:
    """Simulate -> fit and publish -> the live system (joiner, worker, scheduler, server) on
    the replayed log -> re-prune, publish, hot-swap -> summary and HTML report."""
    cfg = load_cli_config(config, sets)
    from kafka.errors import KafkaError

    from streamer.pipeline import PipelineError, run_pipeline
    from streamer.system.procs import DaemonDied, install_interrupt

    undo = install_interrupt()  # Ctrl-C / SIGTERM: stop the daemons, exit 130
    try:
        summary = run_pipeline(cfg, stream=stream, log=lambda m: typer.echo(m, err=True))
    except PipelineError as exc:
        raise fail(str(exc)) from exc
    except KeyboardInterrupt:  # the daemons were stopped (SIGTERM) on the way out
        raise fail("interrupted: every daemon of the run was stopped", 130) from None
    except DaemonDied as exc:
        raise fail(f"a daemon of the main job failed: {exc}", 1) from exc
    except (TimeoutError, RuntimeError) as exc:  # a phase did not finish; daemons stopped
        raise fail(f"the main job stopped: {exc}", 1) from exc
    except KafkaError as exc:
        raise fail(
            f"Kafka error: {exc} (is the broker at {cfg.kafka.bootstrap} up? "
            "`ops/kafka/kafka.sh start`)",
            1,
        ) from exc
    finally:
        undo()
    check = summary.get("stream", {}).get("archive_check")
    if check and (check["missing"] or check["duplicate_rows"] or check["label_mismatches"]):
        raise fail(f"archive does not match the ground truth: {check}", 1)


def register(app: typer.Typer) -> None:
    """Add the ``run`` command to ``app``."""
    app.command("run")(run)
