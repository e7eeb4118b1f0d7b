"""Bad CLI arguments fail before any work starts: one ``error:`` line, exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lt4rec_cli.main import app

LT4REC = [sys.executable, "-m", "lt4rec_cli.main"]


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any training would fail the test: the argument checks must come first."""
    import lt4rec.train.fit

    def refuse(*_a, **_k):
        raise AssertionError("training started before the arguments were checked")

    monkeypatch.setattr(lt4rec.train.fit, "run_fit", refuse)


def _fit(tmp_path: Path, *extra: str):
    inputs = []
    for opt in ("--train", "--valid", "--test", "--features"):
        inputs += [opt, str(tmp_path / f"{opt[2:]}.parquet")]
    return CliRunner().invoke(app, ["fit", *inputs, *extra])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--json", "{tmp}"], "--json {tmp} is a directory"),
        (["--json", "{tmp}/file/m.json"], "--json {tmp}/file/m.json: cannot create {tmp}/file"),
        (["--json", "/proc/self/m.json"], "--json /proc/self/m.json is not writable"),
        (["--json", "{tmp}/m.json", "--checkpoint", "{tmp}"], "--checkpoint {tmp} is a directory"),
        (["--json", "{tmp}/m.json", "--checkpoint", "/sys/m.ckpt"], "/sys/m.ckpt is not writable"),
        (["--json", "{tmp}/m.json", "--plots", "{tmp}/file"], "--plots {tmp}/file exists and is"),
        (["--json", "{tmp}/m.json", "--set", "train.device=tpu"], "device 'tpu' is not one of"),
        (["--json", "{tmp}/m.json", "--set", "train.lr=nan"], "lr must be a finite number"),
        (["--json", "{tmp}/m.json", "--set", "train.weight_decay=-1"], "weight_decay must be >="),
    ],
)
def test_fit_checks_outputs_and_config_before_training(
    tmp_path: Path, no_training: None, args: list[str], needle: str
) -> None:
    (tmp_path / "file").write_text("x")
    result = _fit(tmp_path, *(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert result.exit_code == 2, result.output
    assert needle.replace("{tmp}", str(tmp_path)) in _one_line_error(result.stderr)


def test_non_utf8_config_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"[train]\nlr = 0.1 # \xff\xfe\n")
    r = subprocess.run([*LT4REC, "config", "show", "--config", str(bad)], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2
    assert "bad.toml is not UTF-8 text" in _one_line_error(r.stderr)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--log-level", "chatty"], "--log-level 'chatty' is not one of debug, info"),
        (["--set", "topics.dlq=bad topic!"], "dlq 'bad topic!' may only contain"),
        (["--set", f"topics.clicks={'c' * 250}"], "clicks is 250 characters long"),
    ],
)
def test_streamer_refuses_bad_arguments_before_connecting(args: list[str], needle: str) -> None:
    r = subprocess.run([*LT4REC, "streamer", "--set", "kafka.bootstrap=127.0.0.1:1", *args],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2
    assert needle in _one_line_error(r.stderr)
