"""The event-time join rules of one partition (design doc "Event-time rules"), store-free.

:class:`Rules` turns (state, event) into a new state and outputs, and says when a state needs
attention again (its *deadline*, in event time ms; an entry is due once the watermark is
strictly greater). All windows are closed ``[start, start + window]`` intervals:

* a click counts iff ``0 <= click.ts - imp.ts <= click_window``; the earliest one wins;
* a conversion counts iff the impression was clicked and
  ``0 <= conv.ts - click.ts <= attribution_window``; it makes the label final at once;
* the window closes when the watermark passes ``imp.ts + click_window`` (no click) or
  ``click.ts + attribution_window`` (clicked); then the archive row is staged;
* labels before their impression are held until the watermark passes ``ts + orphan_grace``;
  a conversion still waiting for a click when the window closes is an orphan conversion;
* a tombstone stays until the watermark passes ``imp.ts + click_window + attribution_window``.

Labels are decided from event times only, so for events within the allowed lateness the result
does not depend on how the stream is cut into batches or how topics interleave.
"""

from __future__ import annotations

from lt4rec.config.joiner import JoinerConfig
from streamer.events import Impression
from streamer.joiner.outputs import Collector, features_json
from streamer.joiner.policies import Policy
from streamer.joiner.state import HeldLabel, Orphan, Pending, Source, State, Tombstone

MAX_HELD = 16  # distinct labels held per impression id; more are dead-lettered
# An example's JSON beyond its features: at most 12 bytes per id character (ASCII escapes of
# astral characters) plus the fixed fields; the key repeats the id (4 bytes per character).
_ID_BYTES, _KEY_BYTES, _FIXED_BYTES = 12, 4, 512


def example_bound(iid: str, imp: Impression, features: str) -> int:
    """An upper bound of the bytes of any example (key + value) of this impression."""
    ids = len(iid) + len(imp.user_id) + len(imp.item_id)
    return len(features) + _ID_BYTES * ids + _KEY_BYTES * len(iid) + _FIXED_BYTES


class Rules:
    """Join rules with windows in milliseconds and the configured label policy."""

    def __init__(self, cfg: JoinerConfig, max_bytes: int = 1_000_000) -> None:
        self.max_bytes = max_bytes  # kafka.max_message_bytes: no example may be larger
        self.cw = cfg.click_window_s * 1000
        self.aw = cfg.attribution_window_s * 1000
        self.lateness = cfg.allowed_lateness_s * 1000
        self.grace = cfg.orphan_grace_s * 1000
        self.horizon = self.cw + self.aw
        self.policy = Policy(cfg.policy, cfg.es_dfm_wait_s * 1000)

    # -- deadlines -------------------------------------------------------------------------
    def close_at(self, p: Pending) -> int:
        """Event time after which the label of ``p`` is final."""
        return p.ts + self.cw if p.click_ts is None else p.click_ts + self.aw

    def deadline(self, st: State) -> int:
        if isinstance(st, Pending):
            return self.policy.next_deadline(st, self.close_at(st))
        if isinstance(st, Orphan):
            return min(h.ts for h in st.labels) + self.grace
        return st.ts + self.horizon

    # -- events ----------------------------------------------------------------------------
    def impression(
        self,
        iid: str,
        imp: Impression,
        st: State | None,
        wm: int | None,
        src: Source,
        out: Collector,
    ) -> State | None:
        if isinstance(st, Pending | Tombstone):
            out.count("duplicates.impression")
            return st
        if wm is not None and imp.ts + self.horizon < wm:
            out.dlq(src, "late_impression", f"ts {imp.ts} is past the dedup horizon (wm {wm})")
            return st
        features = features_json(imp.features)
        if (size := example_bound(iid, imp, features)) > self.max_bytes:
            # ASCII JSON escapes non-ASCII text (up to 6x): such an example would not fit
            detail = f"its examples would take up to {size} bytes > {self.max_bytes}"
            out.dlq(src, "oversize", detail)
            return st
        p = Pending(imp.ts, imp.user_id, imp.item_id, features)
        self.policy.on_arrival(iid, p, out)
        new: State = p
        if isinstance(st, Orphan):
            out.count("orphans.matched", len(st.labels))
            for h in sorted(st.labels, key=lambda h: (h.ts, h.kind, h.source.offset)):
                got = self.label(iid, h, new, out)
                assert got is not None
                new = got
        return new

    def label(self, iid: str, h: HeldLabel, st: State | None, out: Collector) -> State | None:
        """Apply a click or conversion (``h``) to the state of its impression id."""
        if st is None:
            out.count("orphans.held")
            return Orphan([h])
        if isinstance(st, Orphan):
            if any(x.kind == h.kind and x.ts == h.ts for x in st.labels):
                out.count(f"duplicates.{h.kind}")
            elif len(st.labels) >= MAX_HELD:
                out.dlq(h.source, "too_many_labels", f"{MAX_HELD} labels already held")
            else:
                st.labels.append(h)
                out.count("orphans.held")
            return st
        if isinstance(st, Tombstone):
            self._late_label(h, st, out)
            return st
        if h.kind == "click":
            return self._click(iid, h, st, out)
        return self._conversion(iid, h, st, out)

    def _click(self, iid: str, h: HeldLabel, p: Pending, out: Collector) -> State:
        if not 0 <= h.ts - p.ts <= self.cw:
            out.count("out_of_window.click")
            return p
        if p.click_ts is not None:
            out.count("duplicates.click")
            if h.ts >= p.click_ts:
                return p
        p.click_ts = h.ts  # the earliest valid click wins
        self.policy.on_label(iid, p, out)
        held, p.held = sorted(p.held, key=lambda x: (x.ts, x.source.offset)), []
        state: State = p
        for c in held:
            if isinstance(state, Tombstone):  # an earlier conversion already made it final
                out.count("duplicates.conversion")
                continue
            state = self._conversion(iid, c, p, out)
        return state

    def _conversion(self, iid: str, h: HeldLabel, p: Pending, out: Collector) -> State:
        if p.click_ts is None:  # the click may still come: wait for it until the window closes
            if any(x.ts == h.ts for x in p.held):
                out.count("duplicates.conversion")
            elif len(p.held) >= MAX_HELD:
                out.dlq(h.source, "too_many_labels", f"{MAX_HELD} conversions already held")
            else:
                p.held.append(h)
            return p
        if not 0 <= h.ts - p.click_ts <= self.aw:
            out.count("out_of_window.conversion")
            return p
        p.conversion_ts = h.ts
        return self.finalise(iid, p, h.ts, out)

    def _late_label(self, h: HeldLabel, t: Tombstone, out: Collector) -> None:
        if h.kind == "click":
            if t.click_ts is not None:
                out.count("duplicates.click")
            elif 0 <= h.ts - t.ts <= self.cw:
                out.dlq(h.source, "late_click", f"window of impression ts {t.ts} closed")
            else:
                out.count("out_of_window.click")
            return
        if t.conversion_ts is not None:
            out.count("duplicates.conversion")
        elif t.click_ts is None:
            out.dlq(h.source, "orphan_conversion", "impression was not clicked")
        elif 0 <= h.ts - t.click_ts <= self.aw:
            out.dlq(h.source, "late_conversion", f"window of click ts {t.click_ts} closed")
        else:
            out.count("out_of_window.conversion")

    # -- closing ---------------------------------------------------------------------------
    def finalise(self, iid: str, p: Pending, label_ts: int, out: Collector) -> Tombstone:
        """Make the label final: policy outputs, the archive row, orphan conversions."""
        for c in p.held:
            out.dlq(c.source, "orphan_conversion", "impression was not clicked")
        p.held = []
        self.policy.on_final(iid, p, label_ts, out)
        return Tombstone(p.ts, p.click_ts, p.conversion_ts)

    def advance(self, iid: str, st: State, wm: int, out: Collector) -> State | None:
        """Act on a due state until it is not due any more (``None``: delete it)."""
        while True:
            if isinstance(st, Pending):
                self.policy.on_watermark(iid, st, wm, out)
                close = self.close_at(st)
                if wm > close:
                    st = self.finalise(iid, st, close, out)
                    continue
                return st
            if isinstance(st, Orphan):
                keep = []
                for h in st.labels:
                    if h.ts + self.grace < wm:
                        out.dlq(h.source, f"orphan_{h.kind}", "no impression within the grace")
                    else:
                        keep.append(h)
                st.labels = keep
                return st if keep else None
            return None if st.ts + self.horizon < wm else st
