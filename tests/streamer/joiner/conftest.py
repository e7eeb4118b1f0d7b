"""Fixtures of the engine-side tests (see tests/streamer/joiner/joinkit.py)."""

from tests.streamer.joiner.joinkit import open_store, store_url

__all__ = ["open_store", "store_url"]
