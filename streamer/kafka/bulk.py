"""Unpaced bulk replay through the producer's record accumulator (``replay --speedup`` unset).

``KafkaProducer.send`` costs ~25 µs per record in Python checks; replaying a data set appends
each record straight to the accumulator instead, to the partition ``send`` would choose (the
replay's explicit one, else murmur2 of the key), keeping the per-partition order. See
:mod:`streamer.kafka.producer` for the internals this relies on and their check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka import TopicPartition

from streamer.kafka.producer import SinkError, append_record, fast_path_supported, record_fits


def produce_unpaced(
    prod: Any,
    events: Any,  # streamer.replay.ReplayEvents
    rows: Any,  # [R] int row indices, in send order
    parts: list[int] | None,
    by_kind: tuple[str, str, str],
    progress: Callable[[int, int], None] | None,
) -> bool:
    """Unpaced replay through the producer's accumulator (see streamer.kafka.producer).

    Same partitions as ``send`` (the given ones, else murmur2 of the key); records that are
    too large go through ``send`` for its error. Returns False (nothing sent) when the
    producer's internals or the topics' partitions do not allow it.
    """
    if not fast_path_supported(prod):
        return False
    counts = {len(prod.partitions_for(t) or ()) for t in by_kind}
    n_parts = counts.pop() if len(counts) == 1 else 0
    if n_parts < 1 or any(sorted(prod.partitions_for(t)) != list(range(n_parts)) for t in by_kind):
        return False
    if parts is None:
        from streamer.replay import key_partitions

        parts = key_partitions(events.keys, n_parts).tolist()
    elif max(parts, default=0) >= n_parts:
        return False
    tps = [[TopicPartition(t, p) for p in range(n_parts)] for t in by_kind]
    kinds, keys, values = events.kind.tolist(), events.keys, events.values
    futures = []
    for n, i in enumerate(rows.tolist()):
        key, value = keys[i], values[i]
        if record_fits(prod, key, value, []):
            futures.append(append_record(prod, tps[kinds[i]][parts[i]], key, value, []))
        else:  # send raises its MessageSizeTooLargeError
            prod.send(by_kind[kinds[i]], value=value, key=key, partition=parts[i])
        if progress is not None and n % 10_000 == 0:
            progress(n, len(rows))
    prod.flush()
    failed = [f for f in futures if not f.succeeded()]
    if failed:
        raise SinkError(f"{len(failed)} event(s) failed: {failed[0].exception}")
    return True
