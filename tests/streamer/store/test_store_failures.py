"""A lost or hung database: bounded retries with backoff, then one line naming the cause.

Real PostgreSQL behind a TCP forwarder that the test cuts (a lost server), and a listener
that accepts connections but never answers (a hung server)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from streamer.joiner import JoinEngine
from streamer.store import StoreError, make_store
from tests.conftest import fresh_pg_database
from tests.streamer.joiner.joinkit import T0, TOPICS, Feed, joiner_cfg
from tests.streamer.store.tcp_proxy import TcpProxy, silent_server

pytestmark = pytest.mark.postgres


@pytest.fixture
def proxied_pg(postgres_url: str) -> Iterator[tuple[str, TcpProxy]]:
    """A fresh PostgreSQL database reached through a proxy the test can cut."""
    for url in fresh_pg_database(postgres_url):
        parts = urlsplit(url)
        proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
        via = sa.engine.make_url(url).set(host="127.0.0.1", port=proxy.port)
        yield via.render_as_string(hide_password=False), proxy
        proxy.cut()


def _engine(url: str, retries: int, retried: list[float]) -> JoinEngine:
    store = make_store(url, connect_timeout_s=2, statement_timeout_s=5)
    eng = JoinEngine(store, joiner_cfg(), TOPICS, "t", retries=retries, backoff_s=0.2,
                     on_retry=lambda: retried.append(time.monotonic()))  # fmt: skip
    eng.claim(0)
    return eng


def test_a_lost_connection_is_retried_with_backoff(proxied_pg) -> None:
    url, proxy = proxied_pg
    retried: list[float] = []
    eng = _engine(url, retries=5, retried=retried)
    f = Feed()
    eng.process(0, [f.imp("a", T0)])
    proxy.cut()  # the server goes away, with the pooled connection
    threading.Timer(1.0, proxy.restore).start()  # and comes back a second later
    res = eng.process(0, [f.imp("b", T0), f.click("a", T0 + 1)])
    assert res.applied == 2 and len(retried) >= 1
    gaps = [b - a for a, b in itertools.pairwise(retried)]
    assert all(g >= 0.9 * 0.2 * 2**i for i, g in enumerate(gaps)), gaps  # 0.2, 0.4, 0.8 ...
    assert eng.stats().partitions[0].next_offsets == {"imp": 2, "clk": 1}
    eng.store.close()


def test_a_database_that_stays_away_is_one_line_after_the_retries(proxied_pg) -> None:
    url, proxy = proxied_pg
    retried: list[float] = []
    eng = _engine(url, retries=2, retried=retried)
    proxy.cut()
    t0 = time.monotonic()
    with pytest.raises(StoreError) as info:
        eng.process(0, [Feed().imp("a", T0)])
    msg = str(info.value)
    assert len(retried) == 2 and time.monotonic() - t0 < 30
    assert "gave up after 3 attempts" in msg and "OperationalError" in msg, msg
    assert "\n" not in msg and "[SQL" not in msg and len(msg) < 500, msg
    eng.store.close()


def test_a_server_that_never_answers_fails_within_the_connect_timeout() -> None:
    with silent_server() as port:
        t0 = time.monotonic()
        with pytest.raises(StoreError) as info:
            make_store(f"postgresql+psycopg://u:s3cret@127.0.0.1:{port}/db", connect_timeout_s=2)
        took = time.monotonic() - t0
    msg = str(info.value)
    assert took < 15, took
    assert "timeout" in msg and "s3cret" not in msg and "\n" not in msg, msg


def test_a_read_only_sqlite_store_names_its_cause(tmp_path) -> None:
    make_store(f"sqlite:///{tmp_path / 's.db'}").close()
    ro = make_store(f"sqlite:///file:{tmp_path / 's.db'}?mode=ro&uri=true")
    eng = JoinEngine(ro, joiner_cfg(), TOPICS, "t", retries=3)
    t0 = time.monotonic()
    with pytest.raises(StoreError, match="attempt to write a readonly database"):
        eng.claim(0)
    assert time.monotonic() - t0 < 5  # not transient: no retries
    ro.close()
