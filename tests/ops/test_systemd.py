"""ops/systemd/*.service: well-formed units whose ExecStart is a real ``lt4rec`` command line.

The command is checked against the Typer app itself (``<subcommand> --help`` in-process), so
a renamed subcommand or option fails here rather than at ``systemctl start``.
"""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lt4rec.config import load_app_config
from lt4rec_cli.main import app

REPO = Path(__file__).resolve().parents[2]
UNITS = sorted((REPO / "ops" / "systemd").glob("*.service"))
# one unit per long-running daemon of the system
DAEMONS = {"streamer", "worker", "scheduler", "serve"}
# the daemons whose Prometheus endpoint is metrics.port (the server's is serve.port)
METRICS_PORT_DAEMONS = {"streamer", "worker"}


class _UnitParser(configparser.ConfigParser):
    def optionxform(self, optionstr: str) -> str:
        return optionstr  # systemd keys are case-sensitive


def read_unit(path: Path) -> configparser.ConfigParser:
    """A unit file as sections of keys (repeated keys kept by the last one, case kept)."""
    parser = _UnitParser(
        strict=False, interpolation=None, delimiters=("=",), comment_prefixes=("#", ";")
    )
    parser.read_string(path.read_text())
    return parser


def exec_args(unit: configparser.ConfigParser) -> list[str]:
    """ExecStart's arguments after the ``lt4rec`` executable."""
    argv = shlex.split(unit["Service"]["ExecStart"].lstrip("@-:+!"))
    assert Path(argv[0]).name == "lt4rec", f"ExecStart does not run lt4rec: {argv[0]}"
    assert Path(argv[0]).is_absolute(), "systemd needs an absolute ExecStart path"
    return argv[1:]


def help_text(subcommand: list[str]) -> str:
    # a wide terminal keeps rich from wrapping or eliding option names in the help panel
    result = CliRunner().invoke(app, [*subcommand, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, f"lt4rec {' '.join(subcommand)} --help: {result.output}"
    return result.output


def test_one_unit_per_daemon() -> None:
    assert {p.stem.removeprefix("lt4rec-") for p in UNITS} == DAEMONS


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_unit_sections_and_restart(path: Path) -> None:
    unit = read_unit(path)
    assert {"Unit", "Service", "Install"} <= set(unit.sections())
    assert unit["Unit"].get("Description"), "Description="
    service = unit["Service"]
    assert service.get("Restart") in {"always", "on-failure", "on-abnormal"}, "Restart="
    assert service.get("ExecStart"), "ExecStart="
    assert service.get("Type", "simple") in {"simple", "exec", "notify"}
    assert service.get("KillSignal", "SIGTERM") in {"SIGTERM", "SIGINT"}  # the daemons drain
    assert re.fullmatch(r"\d+", service.get("TimeoutStopSec", "90")), "TimeoutStopSec="
    assert unit["Install"].get("WantedBy") == "multi-user.target"


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_exec_start_is_a_real_command(path: Path) -> None:
    args = exec_args(read_unit(path))
    positional = []
    for a in args:
        if a.startswith("-"):
            break
        positional.append(a)
    assert positional == [path.stem.removeprefix("lt4rec-")], "unit name = subcommand"
    text = help_text(positional)
    for option in (a.split("=", 1)[0] for a in args if a.startswith("--")):
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), (
            f"{path.name}: lt4rec {positional[0]} has no option {option}"
        )


def sets(args: list[str]) -> list[str]:
    """The values of ``--set KEY=VALUE`` / ``--set=KEY=VALUE`` in ``args``."""
    out = [a.split("=", 1)[1] for a in args if a.startswith("--set=")]
    out += [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--set"]
    return out


def test_overrides_are_valid_and_metrics_ports_distinct() -> None:
    ports: dict[int, str] = {}
    for path in UNITS:
        daemon = path.stem.removeprefix("lt4rec-")
        cfg = load_app_config(None, sets(exec_args(read_unit(path))))  # unknown keys rejected
        if daemon in METRICS_PORT_DAEMONS:
            # metrics.port 0 (the default) would leave the dashboard without this daemon
            assert cfg.metrics.port > 0, f"{path.name}: set metrics.port"
            assert cfg.metrics.port not in ports, f"{path.name} and {ports[cfg.metrics.port]}"
            ports[cfg.metrics.port] = path.name
        if daemon == "serve":
            assert cfg.serve.port not in ports, "serve.port clashes with a metrics port"


def test_help_check_can_fail() -> None:
    text = help_text(["worker"])
    assert "--config" in text
    assert not re.search(r"(?<![\w-])--conf(?![\w-])", text)  # a prefix is not an option
    result = CliRunner().invoke(app, ["no-such-daemon", "--help"])
    assert result.exit_code != 0
