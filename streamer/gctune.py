"""Garbage-collector tuning of the joiner's hot loop.

Every polled batch allocates tens of thousands of short-lived objects (decoded events, dicts,
tuples) and few that live long, so CPython's default generation-0 threshold (700 allocations)
runs a collection every few records, and each young collection also walks objects that were
created at start-up and live forever (modules, config, compiled regexes). :func:`tune` moves
everything alive after start-up into the permanent generation (``gc.freeze()``) and raises
the thresholds, so collections are rarer and cheaper; reference counting still frees almost
everything at once, the collector only finds cycles. Measured with ``ops/bench/joiner.py
--gc-compare`` (docs/benchmarks.md).
"""

from __future__ import annotations

import gc

DEFAULT_THRESHOLDS = (700, 10, 10)  # CPython's defaults
THRESHOLDS = (50_000, 20, 100)


def tune() -> tuple[int, int, int]:
    """Freeze what exists now and raise the collection thresholds (call after start-up);
    returns the thresholds before, for :func:`restore`."""
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    return before


def restore(thresholds: tuple[int, int, int] = DEFAULT_THRESHOLDS) -> None:
    """Undo :func:`tune` (a daemon run inside a longer-lived process: tests, ``lt4rec run``)."""
    gc.unfreeze()
    gc.set_threshold(*thresholds)
