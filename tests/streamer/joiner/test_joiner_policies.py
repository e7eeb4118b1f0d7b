"""Label policies emit the documented live examples; the archive always gets one final row."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.store import MemoryStore
from tests.streamer.joiner.joinkit import T0, Feed, S, archive_rows, drain, joiner_cfg, new_engine
from tests.streamer.joiner.scenario import Driver, examples_by_key, make_stream, truth


def run(policy: str, batches) -> tuple[list[dict], list[dict]]:
    """Examples (by emission order, ticks removed) and archive rows of a scripted run."""
    eng = new_engine(MemoryStore(), joiner_cfg(policy=policy))
    feed = Feed()
    for make in batches:
        eng.process(0, make(feed))
    eng.flush_all(0)
    keep = lambda rows: [r for r in rows if not r["impression_id"].startswith("tick-")]  # noqa: E731
    return keep(drain(eng)), keep(archive_rows(eng))


def summary(examples: list[dict]) -> list[tuple]:
    return [(e["_key"], e["kind"], e["click"], e["conversion"], e["label_ts"]) for e in examples]


CLICK_AND_CONVERT = [
    lambda f: [f.imp("a", T0), f.imp("b", T0)],
    lambda f: f.tick(T0 + 40 * S),  # wm T0 + 10 s
    lambda f: [f.click("a", T0 + 30 * S)],  # after es_dfm's 20 s wait
    lambda f: f.tick(T0 + 80 * S),  # wm T0 + 50 s: es_dfm fresh examples
    lambda f: [f.conv("a", T0 + 100 * S)],
]


def test_wait_full_emits_one_final_example():
    ex, rows = run("wait_full", CLICK_AND_CONVERT)
    assert summary(ex) == [
        ("a:final", "final", 1, 1, T0 + 100 * S),
        ("b:final", "final", 0, 0, T0 + 60 * S),
    ]
    assert [{k: v for k, v in e.items() if k != "_key"} for e in ex] == rows


def test_fnw_emits_fresh_negatives_then_positive_duplicates():
    ex, rows = run("fnw", CLICK_AND_CONVERT)
    assert summary(ex) == [
        ("a:fresh", "fresh", 0, 0, T0),
        ("b:fresh", "fresh", 0, 0, T0),
        ("a:delayed_positive:1", "delayed_positive", 1, 0, T0 + 30 * S),
        ("a:delayed_positive:2", "delayed_positive", 1, 1, T0 + 100 * S),
    ]
    assert {(r["impression_id"], r["kind"], r["click"], r["conversion"]) for r in rows} == {
        ("a", "final", 1, 1), ("b", "final", 0, 0)}  # fmt: skip


def test_es_dfm_emits_observed_label_after_wait_then_delayed_positives():
    ex, _ = run("es_dfm", CLICK_AND_CONVERT)
    assert summary(ex) == [
        ("a:fresh", "fresh", 0, 0, T0 + 20 * S),  # the click at 30 s is after the wait
        ("a:delayed_positive:1", "delayed_positive", 1, 0, T0 + 30 * S),
        ("b:fresh", "fresh", 0, 0, T0 + 20 * S),
        ("a:delayed_positive:2", "delayed_positive", 1, 1, T0 + 100 * S),
    ]


def test_es_dfm_fresh_includes_labels_within_the_wait():
    ex, _ = run("es_dfm", [
        lambda f: [f.imp("a", T0), f.click("a", T0 + 5 * S)],
        lambda f: f.tick(T0 + 60 * S),
        lambda f: [f.conv("a", T0 + 200 * S)],
    ])  # fmt: skip
    assert summary(ex) == [
        ("a:fresh", "fresh", 1, 0, T0 + 20 * S),
        ("a:delayed_positive:2", "delayed_positive", 1, 1, T0 + 200 * S),
    ]


def test_es_dfm_label_final_before_the_wait_emits_fresh_at_once():
    ex, _ = run(
        "es_dfm", [lambda f: [f.imp("a", T0), f.click("a", T0 + S), f.conv("a", T0 + 2 * S)]]
    )
    assert summary(ex) == [("a:fresh", "fresh", 1, 1, T0 + 20 * S)]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), policy=st.sampled_from(["fnw", "es_dfm"]))
def test_policy_examples_are_consistent_with_the_final_label(seed, policy):
    """One fresh per impression; fresh + delayed positives reach exactly the final label."""
    cfg = joiner_cfg(policy=policy)
    stream = make_stream(random.Random(seed), 20, cfg, 0)
    store = MemoryStore()
    d = Driver(lambda: store, cfg, 0, random.Random(seed), 0.0)
    d.run(stream)
    ex = examples_by_key(d)
    wait = cfg.es_dfm_wait_s * S
    for iid, (click, conv, ck, cv, _) in truth(stream, cfg).items():
        fresh = ex[f"{iid}:fresh"]
        if policy == "fnw":
            assert (fresh["click"], fresh["conversion"], fresh["label_ts"]) == (0, 0, fresh["ts"])
        else:
            ts = fresh["ts"]
            assert fresh["click"] == int(ck is not None and ck <= ts + wait)
            assert fresh["conversion"] == int(cv is not None and cv <= ts + wait)
        levels = {lvl for lvl in (1, 2) if f"{iid}:delayed_positive:{lvl}" in ex}
        seen = 2 if fresh["conversion"] else 1 if fresh["click"] else 0
        assert levels == set(range(seen + 1, 1 + (2 if conv else 1 if click else 0)))
