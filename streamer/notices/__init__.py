"""The ``lt4rec.models`` notices: announcing publications and following them.

* :class:`NoticePublisher` (scheduler, worker, ``lt4rec models publish``): publish or roll
  back in the registry, then send the notice keyed by model name to the one-partition topic
  and mark it notified; on start it re-sends the notice a killed publisher left unsent.
* :class:`NoticeFollower` (prediction servers, the worker): the registry's publication in
  service first, then every notice newer than the last one it yielded; malformed notices are
  logged, counted and skipped.
"""

from streamer.notices.follower import FollowerStats, NoticeFollower
from streamer.notices.publisher import NoticeError, NoticePublisher

__all__ = ["FollowerStats", "NoticeError", "NoticeFollower", "NoticePublisher"]
