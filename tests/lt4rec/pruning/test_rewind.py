# mypy: allow-untyped-defs
"""Joint training from the tickets' step-k states: find_ticket keeps them, merge combines them."""

from __future__ import annotations

import pytest
import torch

from lt4rec.config.model import ModelConfig, PruneConfig, TrainConfig
from lt4rec.models import build_model
from lt4rec.models.sparse_sharing import SparseSharing
from lt4rec.pruning import find_ticket
from lt4rec.pruning.imp import Ticket
from lt4rec.pruning.mask import Mask
from lt4rec.pruning.rewind import merge_rewind_states
from lt4rec.testing import RandomDataset, random_schema


@pytest.fixture
def make_ticket():
    def make(task: str, rewind: str):
        torch.manual_seed(0)
        torch.set_num_threads(1)
        schema = random_schema()
        model = build_model(
            ModelConfig(name="sparse_sharing", embedding_dim=4, bottom=(16, 8), tower=(4,)), schema
        )
        assert isinstance(model, SparseSharing)
        init = {k: v.clone() for k, v in model.state_dict().items()}
        train = RandomDataset.make(schema, 512, seed=1)
        valid = RandomDataset.make(schema, 256, seed=2)
        g = torch.Generator().manual_seed(0)
        hp = PruneConfig(rounds=1, rate=0.5, rewind=rewind, rewind_step=2)  # type: ignore[arg-type]
        ticket = find_ticket(
            task,
            model,
            init,
            lambda: train.batches(64, True, g),
            lambda: valid.batches(128, False),
            hp,
            TrainConfig(lr=0.01),
            torch.device("cpu"),
            steps_per_round=8,
        )
        return ticket, init

    return make


def test_step_rewind_ticket_keeps_an_early_trained_state(make_ticket):
    ticket, init = make_ticket("ctr", "step")
    assert ticket.rewind_state is not None and set(ticket.rewind_state) == set(init)
    w = "layers.0.weight"
    assert not torch.equal(ticket.rewind_state[w], init[w])  # trained for k = 2 steps


def test_init_rewind_ticket_has_no_state(make_ticket):
    ticket, _ = make_ticket("cvr", "init")
    assert ticket.rewind_state is None


def _state(value: float) -> dict[str, torch.Tensor]:
    return {
        "embeddings.e": torch.full((3, 2), value),
        "layers.0.weight": torch.full((2, 2), value),
        "layers.0.bias.ctr": torch.full((2,), value),
        "layers.0.bias.cvr": torch.full((2,), value),
    }


def test_merge_averages_overlap_and_takes_own_biases_and_primary_embeddings():
    init = _state(0.0)
    m_ctr = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    m_cvr = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    tickets = {
        "ctr": Ticket("ctr", Mask({"layers.0.weight": m_ctr}), 0, (), _state(2.0)),
        "cvr": Ticket("cvr", Mask({"layers.0.weight": m_cvr}), 0, (), _state(4.0)),
    }
    out = merge_rewind_states(init, tickets)
    # overlap -> mean 3; ctr only -> 2; cvr only -> 4; neither -> init 0
    assert torch.equal(out["layers.0.weight"], torch.tensor([[3.0, 2.0], [4.0, 0.0]]))
    assert torch.equal(out["layers.0.bias.ctr"], torch.full((2,), 2.0))
    assert torch.equal(out["layers.0.bias.cvr"], torch.full((2,), 4.0))
    assert torch.equal(out["embeddings.e"], torch.full((3, 2), 2.0))  # primary = ctr
    assert torch.equal(init["layers.0.weight"], torch.zeros(2, 2))  # inputs untouched


def test_merge_without_rewind_states_is_the_init():
    init = _state(1.5)
    ones = Mask({"layers.0.weight": torch.ones(2, 2)})
    tickets = {t: Ticket(t, ones, 0, ()) for t in ("ctr", "cvr")}
    out = merge_rewind_states(init, tickets)
    assert set(out) == set(init)
    assert all(torch.equal(out[k], init[k]) for k in init)


def test_merge_with_no_primary_averages_shared_parameters():
    ones = Mask({"layers.0.weight": torch.ones(2, 2)})
    tickets = {
        "ctr": Ticket("ctr", ones, 0, (), _state(2.0)),
        "cvr": Ticket("cvr", ones, 0, (), _state(4.0)),
    }
    out = merge_rewind_states(_state(0.0), tickets, primary=None)
    assert torch.equal(out["embeddings.e"], torch.full((3, 2), 3.0))
    assert torch.equal(out["layers.0.weight"], torch.full((2, 2), 3.0))
    assert torch.equal(out["layers.0.bias.cvr"], torch.full((2,), 4.0))


def test_merge_rejects_an_incomplete_rewind_state():
    state = _state(2.0)
    del state["embeddings.e"]
    ones = Mask({"layers.0.weight": torch.ones(2, 2)})
    with pytest.raises(KeyError, match=r"embeddings\.e"):
        merge_rewind_states(_state(0.0), {"ctr": Ticket("ctr", ones, 0, (), state)})
