"""Checks shared by the config dataclasses' ``__post_init__`` (values the types cannot refuse).

TOML allows ``nan`` and ``inf`` for floats, and every string is a ``str``: these helpers refuse
what no setting of this project may hold (non-finite numbers, device names torch does not
know, topic names Kafka would reject) with a message naming the key.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

# Kafka's own rule (kafka.common.internals.Topic): 1..249 of [a-zA-Z0-9._-], not "." or "..".
TOPIC_MAX_CHARS = 249
_TOPIC = re.compile(r"[a-zA-Z0-9._-]+")
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def require_finite(cfg: Any) -> None:
    """Raise ``ValueError`` naming the first ``float`` field of ``cfg`` that is NaN or ±inf."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number, got {value}")


def check_topic_name(key: str, name: str) -> None:
    """Raise ``ValueError`` when Kafka would refuse ``name`` as a topic name."""
    if not name:
        raise ValueError(f"{key} must not be empty")
    if len(name) > TOPIC_MAX_CHARS:
        raise ValueError(f"{key} is {len(name)} characters long (Kafka allows {TOPIC_MAX_CHARS})")
    if name in (".", ".."):
        raise ValueError(f"{key} {name!r} is not a valid Kafka topic name")
    if not _TOPIC.fullmatch(name):
        raise ValueError(f"{key} {name!r} may only contain ASCII letters, digits, '.', '_', '-'")


def check_device(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is auto, cpu, mps, cuda or cuda:N."""
    if not _DEVICE.fullmatch(name):
        raise ValueError(f"device {name!r} is not one of auto, cpu, mps, cuda, cuda:N")
