"""The hostile-input suite on the real broker (issue 7's acceptance).

Every malformed, oversized, colliding, skewed and mis-keyed message of
:mod:`tests.streamer.integration.hostile` is mixed into the simulator's stream (plus ~10 %
duplicates); two ``lt4rec streamer`` processes share the group (the second joins mid-run: a
rebalance while megabyte records are in flight). It must end with: no exit status but 0,
every archive file readable by ``pyarrow.dataset``, every good impression with its right
labels, every bad message in the DLQ with its reason, and peak RSS under ``RSS_BOUND``.
``ops/bench/hostile_soak.py`` runs this test N times in a row, each under a timeout.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from kafka import KafkaAdminClient

from streamer.archive import archive_files
from streamer.dlq import read_dlq
from streamer.kafka.admin import ensure_topics
from tests.streamer.integration.hostile import BIG_VALID, hostile_set, interleave
from tests.streamer.integration.streamer_it_support import (
    PeakRss,
    archive_frame,
    expected_labels,
    orphan_conversions,
    produce,
    spawn_joiner,
    wait_progress,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
RSS_BOUND = 400 * 2**20  # per joiner process (docs/streamer.md; measured 200-220 MiB)
IDLE_S = 4.0


def _digest(value: bytes | None) -> str:
    return hashlib.sha256(value or b"").hexdigest()


def test_hostile_input_never_stops_the_joiner(stream_env, sim_dir, sim_events, children, tmp_path):
    env = stream_env(archive={"max_columns": 64}, kafka={"max_poll_records": 200})
    cfg = env.cfg
    ensure_topics(cfg.kafka, cfg.topics)
    truth = expected_labels(sim_dir, cfg.joiner)
    unclicked = set(truth.impression_id[truth.click == 0])
    last_imp = int(sim_events.ts[sim_events.kind == 0].max())
    h = hostile_set(cfg.topics, last_imp)
    stream = interleave(sim_events, cfg.topics, h, unclicked, seed=7)
    produce(cfg.kafka.bootstrap, stream)

    log = tmp_path / "joiners.log"
    rss = PeakRss()
    a = rss.watch(spawn_joiner(env, idle_s=IDLE_S, log=log))
    children.append(a)
    admin = KafkaAdminClient(bootstrap_servers=cfg.kafka.bootstrap)
    try:
        wait_progress(admin, cfg.kafka.group_id, 0, a)
    finally:
        admin.close()
    b = rss.watch(spawn_joiner(env, idle_s=IDLE_S, log=log))  # joins mid-run: a rebalance
    children.append(b)
    codes = [a.wait(timeout=240), b.wait(timeout=240)]
    peaks = rss.stop()
    text = log.read_text()
    assert codes == [0, 0], text[-4000:]
    assert "Traceback" not in text

    # every archive file readable, alone and as one dataset
    files = archive_files(env.archive)
    assert files and all(pq.read_table(f).num_rows > 0 for f in files)
    table = ds.dataset(env.archive, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == len(truth) + len(h.labels)
    # every good impression with its right labels (the simulator's and the odd valid ones)
    got = archive_frame(env.archive)
    assert got.impression_id.is_unique
    labels = dict(zip(got.impression_id, zip(got.click, got.conversion, strict=True), strict=True))
    want = dict(zip(truth.impression_id, zip(truth.click, truth.conversion, strict=True),
                    strict=True)) | h.labels  # fmt: skip
    assert {k: tuple(map(int, v)) for k, v in labels.items()} == want
    odd = got.set_index("impression_id")
    assert odd.loc["h-collide", ["feature_click", "feature_feature_click", "feature_dt"]].tolist() \
        == ["c", "fc", "d"]  # fmt: skip
    assert list(odd.loc["h-big0", "blob"]) == BIG_VALID

    # every bad message in the DLQ with its reason (whole, or its digest and prefix)
    dlq = read_dlq(cfg.kafka.bootstrap, cfg.topics.dlq)
    got_bad = Counter((d.reason, d.source_topic, d.original_digest()) for d in dlq
                      if d.reason not in ("orphan_conversion", *h.extra_dlq))  # fmt: skip
    assert got_bad == Counter((r, t, _digest(v)) for t, _, v, r in h.bad)
    reasons = Counter(d.reason for d in dlq)
    assert reasons["orphan_conversion"] == orphan_conversions(sim_dir, cfg.joiner)
    assert {r: reasons[r] for r in h.extra_dlq} == h.extra_dlq
    assert all(len(d.value) + len(d.key or b"") <= cfg.kafka.max_message_bytes for d in dlq)

    # what was dropped or coerced is visible (final line of each process)
    finals = [m.groupdict() for m in re.finditer(r"dropped=(?P<d>\d+) coerced=(?P<c>\d+)", text)]
    assert len(finals) == 2
    assert sum(int(f["c"]) for f in finals) == 1  # h-list's list in the string column
    assert sum(int(f["d"]) for f in finals) >= 1  # duplicates, the conversion before its click
    assert max(peaks.values()) < RSS_BOUND, {pid: p / 2**20 for pid, p in peaks.items()}
    print(f"hostile: peak RSS {max(peaks.values()) / 2**20:.0f} MiB, {len(stream)} messages")
