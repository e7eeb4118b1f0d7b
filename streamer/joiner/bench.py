"""Engine throughput and memory benchmark (no Kafka): ``python -m streamer.joiner.bench``.

Feeds a synthetic stream (random 64-bit impression ids, 6 features, ~8 % clicks, ~10 % of
the clicks convert, labels seconds to minutes later, every topic in event-time order) to
``process()`` in batches, draining the example outbox and sealing / acknowledging archive
chunks as the daemon would (without Kafka or Parquet), and reports events/s (wall and CPU).
``--no-drain`` times ``process()`` alone. ``--pending`` keeps every window open (windows
longer than the stream) and reports the peak RSS of the process with that many pending.
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from collections.abc import Iterator

from lt4rec.config import JoinerConfig, TopicsConfig
from streamer.events import Click, Conversion, Event, FeatureValue, Impression
from streamer.joiner.engine import JoinEngine
from streamer.joiner.types import SourceRecord
from streamer.store import make_store

T0 = 1_764_547_200_000
TOPICS = {"impression": "imp", "click": "clk", "conversion": "cnv"}


def stream(n_imps: int, seed: int = 0, step_ms: int = 10) -> Iterator[Event]:
    """Events in (roughly) time order: labels are emitted when their time comes."""
    rng = random.Random(seed)
    later: list[tuple[int, Event]] = []
    for i in range(n_imps):
        ts = T0 + i * step_ms
        while later and later[0][0] <= ts:
            yield later.pop(0)[1]
        iid = f"{rng.getrandbits(64):016x}-{i}"  # random, like UUIDs: B-tree pages at random
        feats: dict[str, FeatureValue] = {
            "age": rng.randrange(18, 80),
            "city": f"c{rng.randrange(300)}",
            "price": rng.random() * 100,
            "tags": ["t1", f"t{rng.randrange(50)}"],
            "hour": (i // 1000) % 24,
            "device": ("ios", "android", "web")[i % 3],
        }
        yield Impression(iid, ts, f"u{rng.randrange(100_000)}", f"i{rng.randrange(20_000)}", feats)
        if rng.random() < 0.08:
            ct = ts + rng.randrange(1_000, 30_000)
            later.append((ct, Click(iid, ct)))
            if rng.random() < 0.1:
                vt = ct + rng.randrange(5_000, 120_000)
                later.append((vt, Conversion(iid, vt)))
            later.sort(key=lambda x: x[0])
    for _, ev in later:
        yield ev


def records(events: Iterator[Event]) -> Iterator[SourceRecord]:
    offsets = dict.fromkeys(TOPICS, 0)
    for ev in events:
        off = offsets[ev.kind]
        offsets[ev.kind] += 1
        key = ev.impression_id.encode()
        yield SourceRecord(ev.kind, TOPICS[ev.kind], 0, off, key, b"{}", ev)


def run(url: str, n_imps: int, batch: int, cfg: JoinerConfig, drain: bool) -> dict[str, float]:
    store = make_store(url)
    eng = JoinEngine(store, cfg, TopicsConfig(partitions=1), "bench")
    eng.claim(0)
    buf: list[SourceRecord] = []
    n = 0
    busy = cpu = 0.0
    start = time.perf_counter()

    def flush() -> None:
        nonlocal busy, cpu
        t, c = time.perf_counter(), time.process_time()
        eng.process(0, buf)
        if drain:
            outs = eng.pending(0, "examples", 1_000_000)
            if outs:
                eng.ack(0, "examples", outs[-1].seq)
            while (chunk := eng.seal_archive(0, min_rows=batch)) is not None:
                eng.ack_archive(chunk)
        busy += time.perf_counter() - t
        cpu += time.process_time() - c
        buf.clear()

    for rec in records(stream(n_imps)):
        buf.append(rec)
        n += 1
        if len(buf) >= batch:
            flush()
    if buf:
        flush()
    wall = time.perf_counter() - start
    st = eng.stats().partitions[0]
    store.close()
    return {"events": n, "engine_s": busy, "events_per_s": n / busy, "engine_cpu_s": cpu,
            "events_per_cpu_s": n / cpu, "wall_s": wall,
            "pending": st.pending, "tombstones": st.tombstones,
            "archived": st.counters.get("archived", 0)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="memory://")
    ap.add_argument("--impressions", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=2_000)
    ap.add_argument("--policy", default="wait_full", choices=("wait_full", "fnw", "es_dfm"))
    ap.add_argument("--no-drain", action="store_true", help="time process() only")
    ap.add_argument("--pending", action="store_true",
                    help="keep every window open and report the peak RSS")  # fmt: skip
    args = ap.parse_args(argv)
    if args.pending:  # windows longer than the stream: everything stays pending
        cfg = JoinerConfig(click_window_s=10**7, attribution_window_s=10**7,
                           max_pending=10**9, policy=args.policy)  # fmt: skip
    else:
        cfg = JoinerConfig(click_window_s=60, attribution_window_s=600, allowed_lateness_s=5,
                           orphan_grace_s=60, policy=args.policy)  # fmt: skip
    res = run(args.url, args.impressions, args.batch, cfg, not args.no_drain)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in res.items()))


if __name__ == "__main__":
    main()
