"""Archive completeness markers: up to which label time a partition's archive is complete.

After the joiner has sealed and written **every** pending archive row of join partition ``p``
(the outbox holds no archive row), every final row of ``p`` whose ``label_ts`` is at most the
partition's watermark ``W`` is in a committed file: a window closes (label_ts = its deadline)
only once the watermark passed it, and an attributed conversion (label_ts = its event time)
finalises the row on arrival. The joiner then writes ``<archive>/_complete/p{P}.json`` =
``{"partition": P, "label_ts": W}`` atomically (written after the files, so a crash leaves an
older, still true marker). The re-pruning job trains on rows with ``label_ts <= min_p W_p``
only, and the worker's catch-up after a hot-swap starts right after that cut: no example is
in neither. After ``--flush-at-end`` (the stream ended, every window closed and archived) the
marker is marked ``ended``: the partition is complete at any label time, and once every
partition ended every archived row is usable (:func:`stream_ended`). (A conversion later than
``joiner.allowed_lateness_s`` may still finalise a row below the marker; the joiner counts
those as ``late.conversion``.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MARKER_DIR = "_complete"


def write_marker(
    archive_dir: str | Path, partition: int, label_ts: int, ended: bool = False
) -> None:
    """Record that partition ``partition`` is archived completely up to ``label_ts`` (ms);
    ``ended``: the stream ended and every row of the partition is archived (any label time)."""
    folder = Path(archive_dir) / MARKER_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"p{partition:04d}.json"
    old = _read(archive_dir).get(partition)
    if old is not None and old[0] >= label_ts and (old[1] or not ended):
        return  # markers only move forward (ending the stream at the same time is a move)
    if old is not None:
        label_ts = max(label_ts, old[0])
    tmp = folder / f".p{partition:04d}.json.tmp-{os.getpid()}"
    data = {"partition": partition, "label_ts": int(label_ts)} | ({"ended": True} if ended else {})
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def read_markers(archive_dir: str | Path) -> dict[int, int]:
    """``{partition: label_ts}`` of every readable marker (unreadable ones are ignored)."""
    return {p: ts for p, (ts, _) in _read(archive_dir).items()}


def _read(archive_dir: str | Path) -> dict[int, tuple[int, bool]]:
    out: dict[int, tuple[int, bool]] = {}
    for path in sorted((Path(archive_dir) / MARKER_DIR).glob("p*.json")):
        try:
            data = json.loads(path.read_text())
            out[int(data["partition"])] = (int(data["label_ts"]), bool(data.get("ended", False)))
        except (ValueError, KeyError, TypeError, OSError):
            continue
    return out


def complete_until(archive_dir: str | Path, partitions: int) -> int | None:
    """The label time up to which EVERY one of ``partitions`` join partitions is archived.

    An ``ended`` partition is complete at any label time: the cut is the least marker of the
    others; with every partition ended any label time is complete (:func:`stream_ended`),
    and the largest marker is returned."""
    markers = _read(archive_dir)
    if any(p not in markers for p in range(partitions)):
        return None
    open_ = [markers[p][0] for p in range(partitions) if not markers[p][1]]
    return min(open_) if open_ else max(markers[p][0] for p in range(partitions))


def stream_ended(archive_dir: str | Path, partitions: int) -> bool:
    """Whether every partition's marker says the stream ended (``--flush-at-end``): every
    row that will ever exist is archived, whatever its label time."""
    markers = _read(archive_dir)
    return all(p in markers and markers[p][1] for p in range(partitions))
