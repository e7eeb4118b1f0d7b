"""``lt4rec config show``: the effective configuration as TOML, and clear errors on bad input."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lt4rec.config import AppConfig, ModelConfig, load_app_config, to_dict
from lt4rec_cli.main import app

Invoke = Callable[..., tuple[int, str, str]]


def plain(text: str) -> str:
    """Error text without rich's box drawing and line wrapping."""
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", text)).strip()


@pytest.fixture
def invoke() -> Invoke:
    """Factory: run ``lt4rec ARGS`` in-process, return (exit code, stdout, plain stderr)."""
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})
        return result.exit_code, result.stdout, plain(result.stderr)

    return run


@pytest.fixture
def config_file(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "lt4rec.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def test_show_prints_defaults_as_toml(invoke: Invoke) -> None:
    code, out, err = invoke("config", "show")
    assert code == 0, err
    assert tomllib.loads(out) == to_dict(load_app_config())  # the default model's profile
    code, out, err = invoke("config", "show", "--set", "model.profile=none")
    assert code == 0, err
    assert tomllib.loads(out) == to_dict(replace(AppConfig(), model=ModelConfig(profile="none")))
    _, out, _ = invoke("config", "show", "--set", "model.name=mmoe")
    assert tomllib.loads(out) == to_dict(load_app_config(overrides=["model.name=mmoe"]))


def test_show_output_is_a_valid_config_file(invoke: Invoke, config_file) -> None:
    _, out, _ = invoke("config", "show", "--set", "train.epochs=4")
    assert load_app_config(config_file(out)) == load_app_config(overrides=["train.epochs=4"])


def test_show_reads_config_file(invoke: Invoke, config_file) -> None:
    path = config_file('[train]\nlr = 0.25\n[topics]\npartitions = 8\nimpressions = "imp"\n')
    code, out, err = invoke("config", "show", "--config", str(path))
    assert code == 0, err
    shown = tomllib.loads(out)
    assert shown["train"]["lr"] == 0.25
    assert shown["topics"]["partitions"] == 8
    assert shown["topics"]["impressions"] == "imp"
    assert shown["train"]["epochs"] == load_app_config().train.epochs  # defaults filled in
    assert shown["train"]["weight_decay"] == AppConfig().train.weight_decay


def test_set_overrides_file_and_repeats(invoke: Invoke, config_file) -> None:
    path = config_file("[train]\nlr = 0.25\nepochs = 2\n")
    code, out, err = invoke(
        "config", "show", "--config", str(path),
        "--set", "train.epochs=9", "--set", "model.bottom=[32, 16]", "--set", "model.name=esmm",
    )  # fmt: skip
    assert code == 0, err
    shown = tomllib.loads(out)
    assert (shown["train"]["lr"], shown["train"]["epochs"]) == (0.25, 9)
    assert shown["model"]["bottom"] == [32, 16]
    assert shown["model"]["name"] == "esmm"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "train.nope=1"], "train.nope"),
        (["--set", "nosection.lr=1"], "nosection"),
        (["--set", "train.epochs=many"], "train.epochs: expected an integer"),
        (["--set", "model.name=gpt"], "model.name: 'gpt' is not one of"),
        (["--set", "train.epochs"], "must look like section.key=value"),
        (["--set", "train.epochs=0"], "epochs must be >= 1"),
    ],
)
def test_bad_override_exits_2_naming_the_key(invoke: Invoke, args: list[str], needle: str) -> None:
    code, out, err = invoke("config", "show", *args)
    assert code == 2
    assert needle in err
    assert out == ""  # no half-printed config
    assert "Traceback" not in err


def test_unknown_key_in_file_exits_2(invoke: Invoke, config_file) -> None:
    path = config_file("[kafka]\nbootstrap = 'h:1'\nbrokers = 3\n")
    code, out, err = invoke("config", "show", "--config", str(path))
    assert code == 2
    assert "kafka.brokers" in err
    assert out == ""


def test_missing_config_file_exits_2(invoke: Invoke, tmp_path: Path) -> None:
    code, _, err = invoke("config", "show", "--config", str(tmp_path / "absent.toml"))
    assert code == 2
    assert "absent.toml does not exist" in err
