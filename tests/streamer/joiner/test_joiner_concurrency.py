"""Several engines (as separate processes would) on one SQL store: SQLite file and PostgreSQL."""

from __future__ import annotations

import threading

from streamer.joiner import JoinEngine
from streamer.store import Fenced, make_store
from tests.streamer.joiner.joinkit import T0, TOPICS, Feed, S, joiner_cfg


def engine(url: str, owner: str) -> JoinEngine:
    return JoinEngine(make_store(url), joiner_cfg(), TOPICS, owner)


def test_engines_on_different_partitions_run_concurrently(db_url):
    errors: list[BaseException] = []

    def work(p: int) -> None:
        try:
            eng = engine(db_url, f"w{p}")
            eng.claim(p)
            feed = Feed(partition=p)
            for b in range(15):
                recs = [feed.imp(f"p{p}-{b}-{k}", T0 + b * S + k) for k in range(20)]
                eng.process(p, [*recs, feed.click(f"p{p}-{b}-0", T0 + b * S + 5)])
            eng.flush_all(p)
            eng.store.close()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    check = engine(db_url, "check")
    for p in range(3):
        check.claim(p)
        st = check.stats().partitions[p]
        assert st.counters["events.impression"] == 300 and st.counters["events.click"] == 15
        assert st.outbox["archive"] == 300 and st.pending == 0
    check.store.close()


def test_takeover_during_processing_loses_and_duplicates_nothing(db_url):
    feed = Feed()
    recs = [feed.imp(f"i{k}", T0 + k * S) for k in range(400)]
    a = engine(db_url, "a")
    a.claim(0)
    fenced, progressed, claimed = threading.Event(), threading.Event(), threading.Event()

    def run_a() -> None:
        pos = 0
        try:
            while pos < len(recs):
                a.process(0, recs[pos : pos + 10])
                pos += 10
                if pos == 100:
                    progressed.set()
                    claimed.wait(30)  # b claims while a is mid-stream
        except Fenced:
            fenced.set()

    t = threading.Thread(target=run_a)
    t.start()
    b = engine(db_url, "b")
    assert progressed.wait(60)
    offsets = b.claim(0)
    claimed.set()
    t.join(60)
    assert fenced.is_set() and a.claimed() == []
    start = offsets.get("imp", 0)
    assert start == 100
    b.process(0, recs[max(0, start - 15) :])  # the consumer may re-deliver a little
    b.flush_all(0)
    st = b.stats().partitions[0]
    assert st.counters["events.impression"] == 400  # every record exactly once
    assert st.outbox["archive"] == 400 and st.counters.get("duplicates.impression", 0) == 0
    a.store.close()
    b.store.close()
