"""A kafka-python 3.0 workaround: finish a group join that the client stopped driving.

``poll()`` drives a JoinGroup -> SyncGroup round only while ``need_rejoin()`` is true, and
``need_rejoin()`` is also true while the leader's *assignment snapshot* differs from the
current *metadata snapshot*. A metadata response that differs for a moment (seen on topics
created just before the consumer joined) starts a join: ``state`` becomes REBALANCING and
``rejoining`` true; a short ``poll()`` leaves that join in flight, the next metadata makes
the two snapshots equal again, ``need_rejoin()`` turns false, and no later ``poll()`` awaits
the join again. The member then fetches on, but stays REBALANCING for good: every offset
commit is refused (``RebalanceInProgressError``), and another member joining the group waits
for a member that never answers. Found on the real broker (the worker's final commit failed
in CI); the regression test is ``tests/streamer/kafka/test_stranded.py``.

:func:`finish_stranded_join`, called after each ``poll()``, asks for the rejoin again when a
join is under way that ``need_rejoin()`` no longer reports, so the next ``poll()`` completes
it. It reads client internals by name and does nothing if they are not there (another client
version), so it can only ever re-request a join the client itself had started.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def stranded(consumer: Any) -> bool:
    """Whether ``consumer``'s client started a join that its ``poll()`` no longer drives."""
    co = getattr(consumer, "_coordinator", None)
    try:
        return bool(co is not None and co.rejoining and not co.need_rejoin())
    except AttributeError:  # not kafka-python 3.0's coordinator: nothing to do
        return False


def finish_stranded_join(consumer: Any) -> bool:
    """Re-request a stranded join (see the module docstring); returns whether it did."""
    if not stranded(consumer):
        return False
    co = consumer._coordinator
    log.warning("group %s: a join was left unfinished by the client (state %s): re-requested",
                getattr(co, "group_id", "?"), getattr(co, "state", "?"))  # fmt: skip
    co.request_rejoin()
    return True
