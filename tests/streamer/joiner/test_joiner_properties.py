"""Property tests: archive labels equal the window rule, whatever the batching and crashes.

Streams stay within the allowed lateness (see scenario.py). For each drawn stream the
archive must hold exactly one row per impression with the ground-truth label, the live
examples must be identical (same keys, same bytes) to those of a single-batch, crash-free run,
and a key delivered twice (crash between produce and ack) must carry the same value.
"""

from __future__ import annotations

import dataclasses
import itertools
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.store import MemoryStore
from tests.streamer.joiner.joinkit import joiner_cfg, new_engine
from tests.streamer.joiner.scenario import Driver, examples_by_key, make_stream, row_label, truth

_parts = itertools.count(1)


def check(open_store, seed: int, n: int, policy: str, crash_rate: float) -> Driver:
    cfg = joiner_cfg(policy=policy)
    part = next(_parts)
    stream = make_stream(random.Random(seed), n, cfg, part)
    expect = truth(stream, cfg)
    d = Driver(open_store, cfg, part, random.Random(seed + 1), crash_rate)
    d.run(stream)
    got = [r for r in d.rows if not r["impression_id"].startswith("tick-")]
    ids = [r["impression_id"] for r in got]
    assert sorted(ids) == sorted(expect), "exactly one archive row per impression"
    assert {r["impression_id"]: row_label(r) for r in got} == expect
    assert all(r["kind"] == "final" for r in got)
    for kind, recs in stream.topics.items():  # offsets skip replays: each event counted once
        assert d.counters.get(f"events.{kind}", 0) == len(recs)
    ref_store = MemoryStore()
    ref = Driver(lambda: ref_store, cfg, part, random.Random(seed + 2), 0.0)
    ref.run(stream)  # another interleaving, other batches, no crash
    assert examples_by_key(d) == examples_by_key(ref)
    return d


policies = st.sampled_from(["wait_full", "fnw", "es_dfm"])


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 40), policy=policies,
       crash=st.sampled_from([0.0, 0.1, 0.3]))  # fmt: skip
def test_labels_match_the_window_rule_on_memory(seed, n, policy, crash):
    store = MemoryStore()
    check(lambda: store, seed, n, policy, crash)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32), policy=policies)
def test_labels_survive_crashes_on_every_store(open_store, seed, policy):
    check(open_store, seed, 25, policy, 0.25)


def test_crash_scenarios_do_crash():
    """The driver really exercises restarts (guards the property tests above)."""
    store = MemoryStore()
    crashes = [check(lambda: store, seed, 30, "wait_full", 0.3).crashes for seed in range(5)]
    assert sum(crashes) >= 5


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 30), policy=policies,
       crash=st.sampled_from([0.0, 0.3]))  # fmt: skip
def test_any_disorder_keeps_one_row_per_impression(seed, n, policy, crash):
    """Without the lateness bound labels may differ, but nothing is lost or doubled."""
    cfg = joiner_cfg(policy=policy)
    part = next(_parts)
    rng = random.Random(seed)
    stream = make_stream(rng, n, cfg, part)
    for recs in stream.topics.values():  # arbitrary order within each topic, then renumber
        rng.shuffle(recs)
        recs[:] = [dataclasses.replace(r, offset=i) for i, r in enumerate(recs)]
    store = MemoryStore()
    d = Driver(lambda: store, cfg, part, random.Random(seed + 1), crash)
    d.run(stream)
    ids = [r["impression_id"] for r in d.rows]
    assert len(ids) == len(set(ids)), "an impression archived twice"
    eng = new_engine(store)
    eng.claim(part)
    late = {o.key.decode() for o in eng.pending(part, "dlq", 10_000)
            if ("reason", b"late_impression") in o.headers}  # fmt: skip
    assert set(ids) | late == set(stream.impressions)
    for kind, recs in stream.topics.items():
        assert d.counters.get(f"events.{kind}", 0) == len(recs)
