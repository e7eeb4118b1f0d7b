"""ops/postgres/postgres.sh on a spare port: private cluster, lt4rec role/database, clean stop.

Never touches the shared server on 5432: the cluster gets a free port and its own data dir
(inside the lt4rec cache, which the ``postgres`` OS user can already traverse when root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "ops" / "postgres" / "postgres.sh"
CACHE = Path(os.environ.get("LT4REC_CACHE") or Path.home() / ".cache" / "lt4rec")

Run = Callable[..., subprocess.CompletedProcess[str]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def postgres_sh() -> Iterator[tuple[Run, int]]:
    """Factory running postgres.sh against a private cluster; stopped and removed afterwards."""
    port = free_port()
    data = CACHE / f"pgtest-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PG_PORT": str(port), "PG_DATA_DIR": str(data)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
        )

    yield run, port
    run("stop")
    shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(f"{data}.run", ignore_errors=True)


@pytest.mark.postgres
@pytest.mark.slow
def test_start_twice_connect_stop(postgres_sh: tuple[Run, int]) -> None:
    run, port = postgres_sh
    first = run("start")
    assert first.returncode == 0, first.stderr
    url = f"postgresql+psycopg://lt4rec:lt4rec@127.0.0.1:{port}/lt4rec_test"
    assert url in first.stdout

    second = run("start")
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stderr

    status = run("status")
    assert status.returncode == 0 and "PostgreSQL" in status.stdout
    assert f"port {port}" in status.stdout

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            user, db = conn.execute(sa.text("select current_user, current_database()")).one()
            assert (user, db) == ("lt4rec", "lt4rec_test")
            conn.execute(sa.text('CREATE DATABASE "t_script_check"'))  # CREATEDB granted
            conn.execute(sa.text('DROP DATABASE "t_script_check"'))
            owner = conn.execute(
                sa.text(
                    "select pg_get_userbyid(datdba) from pg_database where datname = 'lt4rec_test'"
                )
            ).scalar_one()
            assert owner == "lt4rec"
    finally:
        engine.dispose()

    stop = run("stop")
    assert stop.returncode == 0 and "stopped" in stop.stdout
    after = run("status")
    assert after.returncode == 3 and after.stdout.startswith("not running")
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
