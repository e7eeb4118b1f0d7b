"""Label policies of the live example stream (``joiner.policy``); the archive is unaffected.

* ``wait_full`` — one ``final`` example when the label is final (window closed, or at once
  when a conversion is attributed). Key ``{id}:final``.
* ``fnw`` (fake negative weighted) — a ``fresh`` negative at once when the impression arrives
  (``label_ts = ts``), then a ``delayed_positive`` duplicate per positive label: level 1 on the
  click (click=1, conversion=0, ``label_ts`` = click ts), level 2 on the conversion (click=1,
  conversion=1, ``label_ts`` = conversion ts). Keys ``{id}:fresh``, ``{id}:delayed_positive:{1|2}``.
* ``es_dfm`` (elapsed-time sampling) — a ``fresh`` example once the watermark passes
  ``ts + es_dfm_wait`` (or earlier if the label becomes final first) carrying the labels whose
  event time is ``<= ts + es_dfm_wait`` (``label_ts = ts + es_dfm_wait``), then
  ``delayed_positive`` levels 1 / 2 for the positives observed later.

Every label is decided from event times, so the examples do not depend on batching.
Every policy stages exactly one ``final`` archive row per impression.
"""

from __future__ import annotations

from typing import Literal

from streamer.joiner.outputs import Collector, example
from streamer.joiner.state import Pending

PolicyName = Literal["wait_full", "fnw", "es_dfm"]


class Policy:
    """Emission hooks called by :class:`streamer.joiner.rules.Rules`."""

    def __init__(self, name: PolicyName, wait_ms: int) -> None:
        if name not in ("wait_full", "fnw", "es_dfm"):
            raise ValueError(f"joiner.policy: unknown policy {name!r}")
        self.name = name
        self.wait_ms = wait_ms

    def _cut(self, p: Pending) -> int:
        """Labels with event time <= cut are part of the fresh example."""
        return p.ts - 1 if self.name == "fnw" else p.ts + self.wait_ms

    def next_deadline(self, p: Pending, close: int) -> int:
        if self.name == "es_dfm" and not p.fresh_sent:
            return min(close, p.ts + self.wait_ms)
        return close

    def _fresh(self, iid: str, p: Pending, out: Collector) -> None:
        cut = self._cut(p)
        ck = p.click_ts if p.click_ts is not None and p.click_ts <= cut else None
        cv = p.conversion_ts if ck is not None and p.conversion_ts is not None else None
        cv = cv if cv is not None and cv <= cut else None
        label_ts = p.ts if self.name == "fnw" else cut
        out.emit(iid, f"{iid}:fresh", "fresh", example(iid, p, "fresh", label_ts, ck, cv))
        p.fresh_sent = True
        p.positives_sent = 2 if cv is not None else 1 if ck is not None else 0

    def _catch_up(self, iid: str, p: Pending, out: Collector) -> None:
        """Delayed positives for labels observed since the last example."""
        level = 2 if p.conversion_ts is not None else 1 if p.click_ts is not None else 0
        for lvl in range(p.positives_sent + 1, level + 1):
            cv = p.conversion_ts if lvl == 2 else None
            assert p.click_ts is not None
            label_ts = p.click_ts if cv is None else cv
            ex = example(iid, p, "delayed_positive", label_ts, p.click_ts, cv)
            out.emit(iid, f"{iid}:delayed_positive:{lvl}", "delayed_positive", ex)
        p.positives_sent = max(p.positives_sent, level)

    def on_arrival(self, iid: str, p: Pending, out: Collector) -> None:
        """The impression arrived (its held labels are applied right after)."""
        if self.name == "fnw":
            self._fresh(iid, p, out)

    def on_label(self, iid: str, p: Pending, out: Collector) -> None:
        """A click was attached to a pending impression."""
        if self.name != "wait_full" and p.fresh_sent:
            self._catch_up(iid, p, out)

    def on_watermark(self, iid: str, p: Pending, wm: int, out: Collector) -> None:
        """The watermark moved past ``p``'s deadline (es_dfm: time for the fresh example)."""
        if self.name == "es_dfm" and not p.fresh_sent and wm > self._cut(p):
            self._fresh(iid, p, out)
            self._catch_up(iid, p, out)

    def on_final(self, iid: str, p: Pending, label_ts: int, out: Collector) -> None:
        """The label is final: remaining live examples and the archive row."""
        final = example(iid, p, "final", label_ts, p.click_ts, p.conversion_ts)
        if self.name == "wait_full":
            out.emit(iid, f"{iid}:final", "final", final, archive=True)
            return
        if not p.fresh_sent:
            self._fresh(iid, p, out)
        self._catch_up(iid, p, out)
        out.archive(iid, final)
