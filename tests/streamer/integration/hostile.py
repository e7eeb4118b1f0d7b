"""The hostile input set: every malformed, oversized, colliding, skewed or mis-keyed message
the joiner must survive, with what it must do with each (DLQ reason, or the labels of a
valid but odd impression). Shared by tests/streamer/integration/test_hostile.py and
``ops/bench/hostile_soak.py`` (which runs that test N times under a timeout).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from lt4rec.config import TopicsConfig
from streamer.replay import ReplayEvents

BIG_INPUT = 1_048_400  # accepted by the broker, above kafka.max_message_bytes (1,000,000)
BIG_VALID = 16 * ["y" * 60_000]  # a valid ~1 MB impression (strings <= 64 Ki): still fits


@dataclass
class Hostile:
    """Messages to inject, and what must come out of them."""

    bad: list[tuple[str, bytes | None, bytes | None, str]] = field(default_factory=list)
    tail: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # valid, after the data
    labels: dict[str, tuple[int, int]] = field(default_factory=dict)  # valid id -> labels
    extra_dlq: dict[str, int] = field(default_factory=dict)  # reasons of valid events' fates


def _j(body: object) -> bytes:
    return json.dumps(body).encode()


def _imp(iid: str, ts: int, features: dict[str, object] | None = None, **over: object) -> dict:
    feats = {"f": 1} if features is None else features
    return {"event": "impression", "impression_id": iid, "ts": ts, "user_id": "u-h",
            "item_id": "v-h", "features": feats, **over}  # fmt: skip


def hostile_set(topics: TopicsConfig, ts: int) -> Hostile:
    """The set for topics ``topics``; ``ts`` is the event time of the valid odd impressions
    (the last impression time of the data: never late, windows close at the flush)."""
    imp, clk, cnv = topics.impressions, topics.clicks, topics.conversions
    h = Hostile()

    def bad(topic: str, key: bytes | None, value: bytes | None, reason: str) -> None:
        h.bad.append((topic, key, value, reason))

    # the parser's reasons (test_dlq's set) ...
    bad(clk, b"b-utf8", b"\xff\xfe\xfd", "not_utf8")
    bad(imp, b"b-json", b"{oops", "bad_json")
    bad(cnv, b"b-arr", b"[1, 2]", "not_object")
    bad(clk, b"b-ev", _j({"event": "purchase", "impression_id": "x", "ts": ts}), "unknown_event")
    bad(imp, b"b-top", _j({"event": "click", "impression_id": "b-top", "ts": ts}), "wrong_topic")
    bad(clk, b"b-miss", _j({"event": "click", "ts": ts}), "missing_field")
    bad(cnv, b"b-neg", _j({"event": "conversion", "impression_id": "b-neg", "ts": -1}), "bad_ts")
    bad(imp, b"b-type", _j(_imp("b-type", ts, user_id=None)), "bad_type")
    bad(clk, b"b-nan", b'{"event":"click","impression_id":"b-nan","ts":NaN}', "bad_json")
    bad(clk, b"b-deep", b"[" * 5000 + b"]" * 5000, "bad_json")
    bad(clk, b"b-null", None, "bad_json")  # a tombstone (null value)
    # ... a poison pill (item 1): accepted by the broker, too big to copy whole ...
    bad(imp, b"b-big", _j(_imp("b-big", ts, {"blob": "z" * BIG_INPUT})), "oversize")
    # ... an example that would not fit once its text is JSON-escaped ...
    esc = json.dumps(_imp("b-esc", ts, {"t": 8 * ["\u00e9" * 50_000]}), ensure_ascii=False)
    bad(imp, b"b-esc", esc.encode(), "oversize")  # 0.8 MB as UTF-8, 2.4 MB as ASCII JSON
    # ... names and values that cannot be archived (items 2, 6, 11) ...
    bad(imp, b"b-sur", _j(_imp("b-sur", ts, {"\ud800": "s"})), "bad_name")
    bad(imp, b"b-sv", _j(_imp("b-sv", ts, {"s": "a\udc00"})), "bad_value")
    bad(imp, b"b-i63", _j(_imp("b-i63", ts, {"n": 2**63})), "bad_value")
    bad(imp, b"b-e400", _j(_imp("b-e400", ts, {"n": 10**400})), "bad_value")
    bad(imp, b"b-d5k", _j(_imp("b-d5k", ts)).replace(b'"f": 1', b'"f": ' + b"9" * 5000), "bad_json")
    bad(imp, b"b-\x00", _j(_imp("b-\x00", ts)), "bad_id")
    bad(imp, "b-\udfff".encode("utf-8", "surrogatepass"), _j(_imp("b-\udfff", ts)), "bad_id")
    for i in range(20):  # 10,000-key feature maps (item 6)
        wide = _imp(f"b-wide{i}", ts, {f"k{i}_{j}": j for j in range(10_000)})
        bad(imp, f"b-wide{i}".encode(), _j(wide), "too_many_features")
    # ... a far-future ts (item 5), mis-keyed events (item 11) ...
    far = 4_070_908_800_000  # 2099-01-01: within the contract's range, hours ahead of now
    # on all three topics (with h-far's click below), else the watermark, a min over the
    # topics, would not move even without the skew check
    bad(imp, b"b-far", _j(_imp("b-far", far)), "bad_ts")
    bad(cnv, b"b-farc", _j({"event": "conversion", "impression_id": "b-farc", "ts": far}), "bad_ts")
    bad(clk, b"h-wk", _j({"event": "click", "impression_id": "h-far", "ts": far}), "wrong_key")
    bad(clk, b"h-far", _j({"event": "click", "impression_id": "h-far", "ts": far}), "bad_ts")
    bad(
        clk, b"not-h-wk", _j({"event": "click", "impression_id": "h-wk", "ts": ts + 1}), "wrong_key"
    )
    bad(clk, None, _j({"event": "click", "impression_id": "h-wk", "ts": ts + 1}), "wrong_key")

    # valid but odd impressions, after the data, with the labels they must get
    def tail(topic: str, iid: str, body: dict) -> None:
        h.tail.append((topic, iid.encode(), _j(body)))

    collide = {"click": "c", "feature_click": "fc", "dt": "d", "ts": 7, "extra_features": "e"}
    tail(imp, "h-collide", _imp("h-collide", ts, collide))  # item 3
    tail(clk, "h-collide", {"event": "click", "impression_id": "h-collide", "ts": ts + 1000})
    h.labels["h-collide"] = (1, 0)
    for i in range(2):  # ~1 MB valid messages (the hang of item 7 needed them)
        iid = f"h-big{i}"
        tail(imp, iid, _imp(iid, ts, {"blob": BIG_VALID}))
        h.labels[iid] = (0, 0)
    tail(imp, "h-list", _imp("h-list", ts, {"category": ["a", "b"]}))  # list in a string column
    h.labels["h-list"] = (0, 0)
    tail(imp, "h-early", _imp("h-early", ts))  # a conversion before its click: does not count
    tail(cnv, "h-early", {"event": "conversion", "impression_id": "h-early", "ts": ts + 1000})
    tail(clk, "h-early", {"event": "click", "impression_id": "h-early", "ts": ts + 2000})
    h.labels["h-early"] = (1, 0)
    tail(imp, "h-wk", _imp("h-wk", ts))  # its mis-keyed clicks are dead-lettered: no click
    h.labels["h-wk"] = (0, 0)
    tail(imp, "h-far", _imp("h-far", ts))  # its far-future click is dead-lettered
    h.labels["h-far"] = (0, 0)
    for i in range(17):  # 17 distinct clicks of an impression that never comes
        tail(clk, "h-many", {"event": "click", "impression_id": "h-many", "ts": ts + i})
    h.extra_dlq = {"too_many_labels": 1, "orphan_click": 16}
    return h


def interleave(
    events: ReplayEvents, topics: TopicsConfig, h: Hostile, unclicked: set[str], seed: int
) -> list[tuple[str, bytes | None, bytes | None]]:
    """The data in event-time order, ~10% of it duplicated later (never the conversions of
    unclicked impressions: each copy would be dead-lettered again), the bad messages at
    random places, the valid odd impressions at the end."""
    rng = random.Random(seed)
    by_kind = (topics.impressions, topics.clicks, topics.conversions)
    stream = [(by_kind[k], key, val) for k, key, val in
              zip(events.kind.tolist(), events.keys, events.values, strict=True)]  # fmt: skip
    extra: list[list[tuple[str, bytes | None, bytes | None]]] = [[] for _ in range(len(stream))]
    for i, e in enumerate(stream):
        if rng.random() < 0.1 and not (e[0] == topics.conversions and e[1].decode() in unclicked):
            extra[rng.randrange(i, len(stream))].append(e)
    for topic, key, value, _ in h.bad:
        extra[rng.randrange(len(stream))].append((topic, key, value))
    out = [x for i, e in enumerate(stream) for x in [e, *extra[i]]]
    return [*out, *h.tail]
