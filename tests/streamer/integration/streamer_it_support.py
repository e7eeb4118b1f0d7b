"""Helpers of the streamer integration tests: ground truth, archive frames, deployments."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import tomli_w

from lt4rec.config import AppConfig, JoinerConfig, SimConfig, load_app_config, to_dict
from streamer.replay import ReplayEvents, read_table

SIM = SimConfig(impressions=5000, days=1, users=400, items=150, seed=11)
PARTITIONS = 4
LABEL_COLS = ["impression_id", "click", "conversion", "click_ts", "conversion_ts"]


def expected_labels(sim_dir: Path, joiner: JoinerConfig) -> pd.DataFrame:
    """Ground truth under the window rules, one row per impression, sorted by id."""
    table, _ = read_table(sim_dir)
    d = table.select(["impression_id", "ts", "click_ts", "conversion_ts"]).to_pandas()
    dc = d.click_ts - d.ts
    click = d.click_ts.notna() & (dc >= 0) & (dc <= joiner.click_window_s * 1000)
    dv = d.conversion_ts - d.click_ts
    conv = click & d.conversion_ts.notna() & (dv >= 0) & (dv <= joiner.attribution_window_s * 1000)
    out = pd.DataFrame(
        {
            "impression_id": d.impression_id,
            "click": click.astype("int64"),
            "conversion": conv.astype("int64"),
            "click_ts": d.click_ts.where(click).astype("Int64"),
            "conversion_ts": d.conversion_ts.where(conv).astype("Int64"),
        }
    )
    return out.sort_values("impression_id").reset_index(drop=True)


def orphan_conversions(sim_dir: Path, joiner: JoinerConfig) -> int:
    """Conversions whose impression has no counted click (dead-lettered by the joiner)."""
    table, _ = read_table(sim_dir)
    d = table.select(["impression_id", "conversion_ts"]).to_pandas()
    exp = expected_labels(sim_dir, joiner).set_index("impression_id")
    has_conv = d.set_index("impression_id").conversion_ts.notna()
    return int((has_conv & (exp.click.reindex(has_conv.index) == 0)).sum())


def archive_frame(archive_dir: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """The archive as a DataFrame sorted by impression id (all columns by default)."""
    from streamer.archive import read_archive

    df = read_archive(archive_dir).to_pandas()
    if columns is not None:
        df = df[columns]
    for col in ("click_ts", "conversion_ts"):
        if col in df:
            df[col] = df[col].astype("Int64")
    return df.sort_values("impression_id").reset_index(drop=True)


@dataclass
class StreamEnv:
    """One joiner deployment: config (+ its TOML file), archive directory."""

    cfg: AppConfig
    path: Path

    @property
    def archive(self) -> Path:
        return Path(self.cfg.archive.dir)

    def variant(self, name: str, **sections: dict) -> StreamEnv:
        """Same topics, other group / store / archive (e.g. an uninterrupted reference run)."""
        data = to_dict(self.cfg)
        base = self.path.parent / name
        base.mkdir()
        data["kafka"]["group_id"] = f"{self.cfg.kafka.group_id}-{name}"
        data["store"]["url"] = f"sqlite:///{base / 'state.db'}"
        data["archive"]["dir"] = str(base / "archive")
        for sec, values in sections.items():
            data[sec].update(values)
        return write_env(base, data)


def write_env(base: Path, data: dict) -> StreamEnv:
    path = base / "joiner.toml"
    path.write_text(tomli_w.dumps(data))
    return StreamEnv(load_app_config(path), path)


def segment(events: ReplayEvents, a: int, b: int) -> ReplayEvents:
    """Events ``a .. b - 1`` of a replay (to produce a stream in parts)."""
    return ReplayEvents(events.ts[a:b], events.kind[a:b], events.keys[a:b], events.values[a:b])


def run_inprocess(env: StreamEnv, idle_s: float = 3.0):
    """Run a joiner in this process until idle, with --flush-at-end semantics."""
    from streamer.daemon import DaemonOptions, JoinerDaemon

    daemon = JoinerDaemon(env.cfg, DaemonOptions(exit_when_idle_s=idle_s, flush_at_end=True))
    return daemon.run()


def spawn_joiner(env: StreamEnv, idle_s: float, log: Path) -> subprocess.Popen:
    """``lt4rec streamer`` as a child process (stderr to ``log``)."""
    cmd = [
        sys.executable,
        "-m",
        "lt4rec_cli.main",
        "streamer",
        "--config",
        str(env.path),
        "--exit-when-idle",
        str(idle_s),
        "--flush-at-end",
        "--log-level",
        os.environ.get("LT4REC_TEST_JOINER_LOG", "warning"),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("ab"))


class PeakRss:
    """Peak resident memory of child processes, sampled with psutil (and the kernel's own
    high-water mark, VmHWM, while the process lives)."""

    def __init__(self, interval_s: float = 0.05) -> None:
        import threading

        self.peak: dict[int, int] = {}
        self._procs: list[subprocess.Popen] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True)
        self._thread.start()

    def watch(self, proc: subprocess.Popen) -> subprocess.Popen:
        self._procs.append(proc)
        return proc

    def _sample(self, pid: int) -> int:
        import psutil

        rss = psutil.Process(pid).memory_info().rss
        with open(f"/proc/{pid}/status") as f:
            hwm = next((int(x.split()[1]) * 1024 for x in f if x.startswith("VmHWM:")), 0)
        return max(rss, hwm)

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            for p in list(self._procs):
                try:
                    self.peak[p.pid] = max(self.peak.get(p.pid, 0), self._sample(p.pid))
                except Exception:  # exited meanwhile (psutil.NoSuchProcess, ZombieProcess)
                    continue

    def stop(self) -> dict[int, int]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peak


def produce(bootstrap: str, stream: list[tuple[str, bytes | None, bytes | None]]) -> None:
    """Send ``(topic, key, value)`` messages in order (up to 2 MB each: hostile sizes too)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_request_size=2_000_000)
    for topic, key, value in stream:
        producer.send(topic, value=value, key=key)
    producer.flush()
    producer.close()


def read_topic(bootstrap: str, topic: str, idle_ms: int = 2000) -> list:
    """Every record of ``topic`` from the beginning (kafka-python ConsumerRecords)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            batch = consumer.poll(timeout_ms=idle_ms)
            if not batch:
                break
            for recs in batch.values():
                out.extend(recs)
        return out
    finally:
        consumer.close()


def example_origins(records) -> dict[str, set[tuple[int, int]]]:
    """Example key -> the (join partition, outbox seq) origins it arrived with.

    Also checks the origin contract: every example has the three origin headers, and within
    one examples-topic partition the seqs of one join partition never go backwards except
    by repeating a seq already seen (a re-delivery after a crash).
    """
    from streamer.delivery import ORIGIN_PARTITION, ORIGIN_POLICY, ORIGIN_SEQ

    out: dict[str, set[tuple[int, int]]] = {}
    high: dict[tuple[int, int], int] = {}  # (topic partition, join partition) -> max seq
    seen: dict[tuple[int, int], set[int]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        h = {k: bytes(v).decode() for k, v in r.headers}
        assert {ORIGIN_PARTITION, ORIGIN_SEQ, ORIGIN_POLICY} <= set(h), h
        src, seq = int(h[ORIGIN_PARTITION]), int(h[ORIGIN_SEQ])
        lane = (r.partition, src)
        if seq <= high.get(lane, -1):
            assert seq in seen[lane], f"seq {seq} of {lane} went backwards to an unseen seq"
        high[lane] = max(high.get(lane, -1), seq)
        seen.setdefault(lane, set()).add(seq)
        out.setdefault(r.key.decode(), set()).add((src, seq))
    return out


def committed_total(admin, group: str) -> int:
    """Sum of the group's committed offsets (the joiner commits after every batch)."""
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    except Exception:  # coordinator loading / group not yet known
        return 0
    return sum(max(0, o.offset) for o in offsets.values())


def wait_progress(admin, group: str, above: int, proc, timeout_s: float = 60.0) -> int:
    """Block until the group's committed total exceeds ``above`` (or ``proc`` exits)."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        total = committed_total(admin, group)
        if total > above or proc.poll() is not None:
            return total
        time.sleep(0.1)
    raise AssertionError(f"no progress of group {group} within {timeout_s}s")


def group_size(admin, group: str) -> int:
    """Members of a consumer group (0 while unknown)."""
    try:
        return len(admin.describe_groups([group]).get(group, {}).get("members") or [])
    except Exception:  # coordinator not available yet
        return 0
