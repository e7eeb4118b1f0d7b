"""``lt4rec models list|show|publish|rollback|notify`` on a registry, notices on the broker."""

from __future__ import annotations

import json
import re
import time

import pytest
from typer.testing import CliRunner

from checkpoints.publish import pending_notices
from lt4rec_cli.main import app
from streamer.notices import NoticeFollower
from tests.streamer.models_support import corrupt, save_version, serving_config

pytestmark = pytest.mark.kafka


@pytest.fixture
def env(tmp_path, kafka_bootstrap, unique_name):
    e = serving_config(tmp_path / "env", kafka_bootstrap, unique_name("models"))
    reg = e.registry()
    versions = [save_version(reg, e.cfg, s).version for s in (1, 2, 3)]
    yield e, reg, versions
    reg.close()


def run(e, *args: str, extra: tuple[str, ...] = ()) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app, ["models", *args, "--config", str(e.path), *extra], env={"COLUMNS": "200"}
    )
    return result.exit_code, result.stdout, re.sub(r"\s+", " ", result.stderr)


def notices_on_topic(e, want: int) -> list:
    f = NoticeFollower(e.cfg.kafka, e.cfg.topics, start="beginning")
    got: list = []
    try:
        deadline = time.monotonic() + 20
        while len(got) < want and time.monotonic() < deadline:
            got += f.poll(0.5)
        return got + f.poll(0.3)
    finally:
        f.close()


def test_list_and_show(env):
    e, _reg, (v1, v2, v3) = env
    code, out, err = run(e, "publish", str(v2))
    assert code == 0, err
    code, out, _ = run(e, "list")
    assert code == 0
    rows = [ln.split() for ln in out.splitlines()[1:]]
    assert [r[1] if r[0] == "*" else r[0] for r in rows] == [str(v3), str(v2), str(v1)]
    assert next(r for r in rows if r[0] == "*")[1:4] == [str(v2), "offline", "published"]
    code, out, _ = run(e, "list", "--json", "--status", "ready")
    data = json.loads(out)
    assert [d["version"] for d in data] == [v3, v1] and not any(d["in_service"] for d in data)
    code, out, _ = run(e, "show", str(v2), "--json")
    shown = json.loads(out)
    assert shown["in_service"] and shown["publications"][0]["notified"] is True
    assert shown["metrics"] == {"seed": 2}
    code, out, _ = run(e, "show", str(v2))
    assert code == 0 and "in service    yes" in out and "metric seed = 2" in out


def test_publish_and_rollback_announce_on_the_topic(env):
    e, reg, (v1, v2, _) = env
    assert run(e, "publish", str(v1))[0] == 0
    code, out, err = run(e, "publish", str(v2), "--reason", "better")
    assert code == 0, err
    assert f"version {v2} is in service" in out and "notice sent" in out
    code, out, err = run(e, "rollback")
    assert code == 0, err
    assert f"version {v1} is in service" in out
    got = notices_on_topic(e, 3)
    assert [(n.version, n.action) for n in got] == [(v1, "publish"), (v2, "publish"),
                                                     (v1, "rollback")]  # fmt: skip
    assert reg.current().reason == "rollback"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("show", "999"), "version 999 does not exist"),
        (("publish", "999"), "publish refused: version 999 does not exist"),
        (("rollback",), "rollback refused: nothing to roll back to"),
        (("list", "--status", "shiny"), "unknown status 'shiny'"),
        (("publish", "abc"), "Invalid value for 'version'"),
    ],
)
def test_bad_arguments_fail_with_one_line_and_exit_2(env, args, words):
    e, _, _ = env
    code, out, err = run(e, *args)
    assert code == 2 and words in err, err
    assert "Traceback" not in err + out


def test_a_corrupt_version_is_not_published(env):
    e, reg, (v1, v2, _) = env
    assert run(e, "publish", str(v1))[0] == 0
    corrupt(reg.get(v2).path)
    code, _, err = run(e, "publish", str(v2))
    assert code == 2 and "sha256" in err and "publish refused" in err
    assert reg.current().version.version == v1
    assert reg.get(v2).status == "corrupt"


def test_broker_down_keeps_the_publication_and_notify_sends_it_later(env):
    e, reg, (v1, _, _) = env
    down = ("--set", "kafka.bootstrap='127.0.0.1:1'", "--set", "kafka.bootstrap_timeout_ms=1000")
    code, out, err = run(e, "publish", str(v1), extra=down)
    assert code == 1 and "the notice was not sent" in err, err
    assert f"version {v1} is in service" in out
    assert [n.version for n in pending_notices(reg)] == [v1]
    code, out, err = run(e, "notify")
    assert code == 0 and "1 pending notice(s) sent" in out, err
    assert pending_notices(reg) == []
    assert [n.version for n in notices_on_topic(e, 1)] == [v1]
    assert run(e, "notify")[1].strip() == "notify: nothing pending"


def test_no_notify_leaves_the_notice_pending(env):
    e, reg, (v1, _, _) = env
    code, out, _ = run(e, "publish", str(v1), "--no-notify")
    assert code == 0 and "notice sent" not in out
    assert [n.version for n in pending_notices(reg)] == [v1]
