"""Configuration of the worker's model following and online publishing (``[publish]``)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PublishConfig:
    """What the online worker does with ``topics.models``.

    * **follow**: a re-pruned version published (or any version rolled back to) replaces the
      worker's model after a catch-up on the examples it does not cover (``follow = true``);
    * **publish**: every ``online_every_s`` seconds (0 = never) the worker publishes its newest
      online version when, over the same progressively scored rows since the version in
      service was set, its AUC is not worse than that version's by more than ``online_eps``
      for either task (shadow scoring), and at least ``online_min_rows`` CTR rows were scored.
    """

    follow: bool = True
    registry_poll_s: float = 30.0  # also compare the registry's publication (missed notices)
    online_every_s: float = 600.0
    online_min_rows: int = 1000
    online_eps: float = 0.0
    # a catch-up stops iterating towards the live position when fewer rows than this are left;
    # the rest is trained at the batch boundary of the swap (the pause)
    swap_gap_rows: int = 2048

    def __post_init__(self) -> None:
        if not math.isfinite(self.online_every_s) or self.online_every_s < 0:
            raise ValueError("online_every_s must be a finite number >= 0")
        if not math.isfinite(self.registry_poll_s) or self.registry_poll_s < 0:
            raise ValueError("registry_poll_s must be a finite number >= 0")
        if self.online_min_rows < 0 or self.swap_gap_rows < 0:
            raise ValueError("online_min_rows and swap_gap_rows must be >= 0")
        if not math.isfinite(self.online_eps) or self.online_eps < 0:
            raise ValueError("online_eps must be a finite number >= 0")
