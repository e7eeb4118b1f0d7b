"""Progress bars on stderr (rich), disabled automatically when stderr is not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")
_console = Console(stderr=True)


def track(
    items: Iterable[T], total: int | None, description: str, enabled: bool | None = None
) -> Iterator[T]:
    """Yield ``items`` while drawing a progress bar (``enabled=None``: only on a TTY)."""
    on = sys.stderr.isatty() if enabled is None else enabled
    if not on:
        yield from items
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console,
        transient=True,
    ) as bar:
        job = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(job)


def log(message: str) -> None:
    """One status line on stderr."""
    _console.print(message, highlight=False)
