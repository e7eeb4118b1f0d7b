"""ops/test.sh and .ci/run: the README test command fails when pytest collects nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.kafka
@pytest.mark.postgres
def test_no_tests_collected_is_a_failure() -> None:
    """pytest exit 5 (nothing selected) must not pass CI silently."""
    res = subprocess.run(
        ["bash", "ops/test.sh", "tests/ops/test_test_script.py", "-k", "no_such_test_zz", "-q"],
        cwd=REPO,
        env={**os.environ, "OPS_TEST_LINT": "0"},
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 1, res.stderr
    assert "pytest: exit 5" in res.stderr
    assert "FAILED: pytest (exit 5)" in res.stderr


def test_ci_run_calls_exactly_the_readme_command() -> None:
    text = (REPO / ".ci" / "run").read_text()
    assert text.startswith("#!/usr/bin/env bash")
    assert "set -euo pipefail" in text
    commands = [
        line.strip()
        for line in text.splitlines()
        if line.strip().startswith(("bash", "sh ", "./", "ops/"))
    ]
    assert commands == ["bash ops/test.sh </dev/null || rc=$?"]
    assert os.access(REPO / ".ci" / "run", os.X_OK)
