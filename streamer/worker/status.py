"""``lt4rec worker status``: where the online model stands, from the registry and Kafka.

Read-only and independent of any running process (several workers may share a group): the
newest ``online`` version of the registry says which version trains, its checkpoint metadata
(read without the tensors) gives the trained offsets per partition, the examples-trained
counters and the rolling metrics; Kafka's end offsets of ``topics.examples`` give the lag.

Healthy means: an online version exists, and either nothing waits (lag 0) or its checkpoint
is younger than ``worker.stale_after_s``. A stale checkpoint with examples waiting means no
worker makes progress (stopped, crashed, or stuck), which is what the exit code reports.
"""

from __future__ import annotations

import time
from typing import Any

from checkpoints import CorruptCheckpointError, Registry
from checkpoints.format import read_metadata
from lt4rec.config import AppConfig


def end_offsets(cfg: AppConfig, topic: str) -> dict[int, tuple[int, int]]:
    """``{partition: (beginning, end)}`` of ``topic`` (empty when it does not exist)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer: Any = KafkaConsumer(
        bootstrap_servers=cfg.kafka.bootstrap,
        bootstrap_timeout_ms=cfg.kafka.bootstrap_timeout_ms,
        enable_auto_commit=False,
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return {}
        begin, end = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        return {tp.partition: (int(begin[tp]), int(end[tp])) for tp in tps}
    finally:
        consumer.close()


def worker_status(cfg: AppConfig, now: float | None = None) -> dict[str, Any]:
    """The status report (JSON-able); ``healthy`` and ``problems`` say what is wrong."""
    now = time.time() if now is None else now
    reg = Registry(cfg.registry)
    try:
        info = reg.latest(kinds=["online"])
    finally:
        reg.close()
    topic = cfg.topics.examples
    ends = end_offsets(cfg, topic)
    out: dict[str, Any] = {"topic": topic, "group_id": cfg.worker.group_id, "problems": []}
    if info is None:
        out["problems"].append("no online version in the registry: no worker has checkpointed")
        out["healthy"] = False
        out["partitions"] = {str(p): {"lag": e - b} for p, (b, e) in ends.items()}
        return out
    stream: dict[str, Any] = {}
    try:
        meta = read_metadata(info.path) if info.path else {}
        stream = (meta.get("extra") or {}).get("stream") or {}
    except (CorruptCheckpointError, OSError) as exc:
        out["problems"].append(f"version {info.version}: {exc}")
    offsets = {int(p): int(o) for p, o in (stream.get("offsets") or {}).items()}
    parts: dict[str, dict[str, Any]] = {}
    for p, (begin, end) in sorted(ends.items()):
        at = offsets.get(p)
        parts[str(p)] = {"offset": at, "end": end, "lag": end - max(begin, at or begin)}
    lag = int(sum(v["lag"] for v in parts.values()))
    age = now - info.created
    out.update(
        version=info.version,
        parent=info.parent,
        status=info.status,
        checkpoint_age_s=round(age, 1),
        partitions=parts,
        lag=lag,
        counters=stream.get("counters", {}),
        data_range=[info.data_first_ts, info.data_last_ts],
        metrics={k: v for k, v in info.metrics.items() if not k.startswith("trained_")},
    )
    if lag > 0 and age > cfg.worker.stale_after_s:
        out["problems"].append(
            f"{lag} example(s) wait and the newest checkpoint is {age:.0f}s old "
            f"(> worker.stale_after_s = {cfg.worker.stale_after_s:.0f}s): no worker makes progress"
        )
    out["healthy"] = not out["problems"]
    return out


def format_status(s: dict[str, Any]) -> str:
    """The report as a few human-readable lines."""
    lines = [f"worker status: {'healthy' if s['healthy'] else 'UNHEALTHY'} (topic {s['topic']})"]
    if "version" in s:
        lines.append(
            f"version {s['version']} (parent {s['parent']}, {s['status']}), last checkpoint "
            f"{s['checkpoint_age_s']:.0f}s ago, lag {s['lag']}"
        )
        c = s["counters"]
        lines.append(
            f"trained: examples={c.get('examples', 0)} ctr={c.get('ctr', 0)} "
            f"cvr={c.get('cvr', 0)} duplicates={c.get('duplicates', 0)} "
            f"dead_letters={c.get('dead_letters', 0)}"
        )
        m = s["metrics"]
        rolling = " ".join(
            f"{k}={v:.4f}" for k, v in sorted(m.items()) if isinstance(v, float) and "_" in k
        )
        lines.append(f"rolling: {rolling}")
    for p, v in s.get("partitions", {}).items():
        lines.append(f"  partition {p}: offset={v.get('offset')} lag={v['lag']}")
    lines.extend(f"problem: {msg}" for msg in s["problems"])
    return "\n".join(lines)
