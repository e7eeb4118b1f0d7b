"""The store encoding of join states round-trips exactly and never loads classes."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamer.joiner.state import HeldLabel, Orphan, Pending, Source, Tombstone, decode, encode
from streamer.store import ORPHAN, Entry

ts = st.integers(-(2**62), 2**62)
opt_ts = st.none() | ts
sources = st.builds(Source, st.text(), st.integers(0, 1000), st.integers(0, 2**62),
                    st.none() | st.binary(), st.binary())  # fmt: skip
labels = st.builds(HeldLabel, st.sampled_from(["click", "conversion"]), ts, sources)
pendings = st.builds(Pending, ts, st.text(), st.text(), st.text(), opt_ts, opt_ts,
                     st.lists(labels, max_size=3), st.booleans(), st.integers(0, 2))  # fmt: skip
states = pendings | st.builds(Orphan, st.lists(labels, min_size=1, max_size=3)) | st.builds(
    Tombstone, ts, opt_ts, opt_ts)  # fmt: skip


@given(state=states, deadline=ts)
def test_states_round_trip(state, deadline):
    entry = encode("id", state, deadline)
    assert entry.deadline == deadline
    assert decode(entry) == state


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_stored_state_cannot_load_classes():
    with pytest.raises(pickle.UnpicklingError, match=r"builtins\.print"):
        decode(Entry("id", ORPHAN, 0, pickle.dumps([Evil()])))


def test_unknown_state_code_is_named():
    with pytest.raises(ValueError, match="'x': unknown state code 9"):
        decode(Entry("x", 9, 0, b""))
