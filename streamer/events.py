"""Input event types of the joiner (the JSON event contract, see README "Event contract").

Topic ``lt4rec.impressions`` carries :class:`Impression`, ``lt4rec.clicks`` :class:`Click`,
``lt4rec.conversions`` :class:`Conversion`; every message is keyed by ``impression_id`` so the
three topics are co-partitioned and one joiner owns all events of an impression.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FeatureValue = str | int | float | list[str]
EventKind = Literal["impression", "click", "conversion"]


@dataclass(frozen=True)
class Impression:
    impression_id: str
    ts: int  # event time, ms since epoch (UTC)
    user_id: str
    item_id: str
    features: dict[str, FeatureValue] = field(default_factory=dict)
    kind: EventKind = "impression"


@dataclass(frozen=True)
class Click:
    impression_id: str
    ts: int
    kind: EventKind = "click"


@dataclass(frozen=True)
class Conversion:
    impression_id: str
    ts: int
    kind: EventKind = "conversion"


Event = Impression | Click | Conversion


class InvalidEvent(ValueError):
    """An input message that breaks the event contract; ``reason`` is a short DLQ code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
