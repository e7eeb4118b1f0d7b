# mypy: allow-untyped-defs
"""IMP per task: shared init, rounds scored on validation, selection rule, density schedule."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lt4rec.config.model import ModelConfig, PruneConfig, TrainConfig
from lt4rec.models import build_model
from lt4rec.pruning import find_ticket
from lt4rec.pruning.imp import RoundResult, select_round
from lt4rec.testing import RandomDataset, random_schema


@pytest.fixture
def setup():
    def make(**prune_kw):
        torch.manual_seed(0)
        torch.set_num_threads(1)
        schema = random_schema()
        model = build_model(
            ModelConfig(name="sparse_sharing", embedding_dim=4, bottom=(16, 8), tower=(4,)), schema
        )
        init = {k: v.clone() for k, v in model.state_dict().items()}
        train = RandomDataset.make(schema, 512, seed=1)
        valid = RandomDataset.make(schema, 256, seed=2)
        g = torch.Generator().manual_seed(0)
        hp = PruneConfig(**{"rounds": 2, "rate": 0.5, "rewind_step": 2, **prune_kw})
        return model, init, train, valid, g, hp

    return make


def _find(task, model, init, train, valid, g, hp, steps, **kw):
    """``find_ticket`` on the fixture's data: batches of 64 / 128, lr 0.01, CPU."""
    return find_ticket(
        task,
        model,
        init,
        lambda: train.batches(64, True, g),
        lambda: valid.batches(128, False),
        hp,
        TrainConfig(lr=0.01),
        torch.device("cpu"),
        steps_per_round=steps,
        **kw,
    )


@pytest.mark.parametrize("task", ["ctr", "cvr"])
def test_find_ticket_prunes_each_round_and_selects_on_validation(setup, task):
    model, init, train, valid, g, hp = setup()
    seen: list[RoundResult] = []
    ticket = _find(task, model, init, train, valid, g, hp, 8, on_round=seen.append)
    dens = [r.density for r in ticket.rounds]
    assert len(dens) == 3 and dens[0] == 1.0
    assert dens[0] > dens[1] > dens[2]
    assert dens[1] == pytest.approx(0.5, abs=0.02)  # hidden layers at rate 0.5, output at 0.25
    assert seen == list(ticket.rounds)
    assert ticket.selected_round == select_round(list(ticket.rounds), hp)
    assert ticket.mask.density == pytest.approx(dens[ticket.selected_round])
    assert all(r.steps == 8 for r in ticket.rounds)


def test_rounds_start_from_the_given_init_and_rewind(setup):
    model, init, train, valid, g, hp = setup(rewind="init")
    before = {k: v.clone() for k, v in init.items()}
    _find("ctr", model, init, train, valid, g, hp, 4)
    for k, v in init.items():  # the caller's init is never modified
        assert torch.equal(v, before[k])


def test_select_round_rules():
    hp = PruneConfig(max_density=0.3)
    rounds = [
        RoundResult(0, 1.0, 0.90, 0.1, 1, 0.0),
        RoundResult(1, 0.5, 0.80, 0.1, 1, 0.0),
        RoundResult(2, 0.25, 0.70, 0.1, 1, 0.0),
        RoundResult(3, 0.12, 0.75, 0.1, 1, 0.0),
    ]
    assert select_round(rounds, hp) == 3  # best valid among density <= 0.3
    assert select_round(rounds, dataclasses.replace(hp, select="last")) == 3
    assert select_round(rounds[:2], hp) == 1  # none qualifies: the sparsest
    assert select_round(rounds, dataclasses.replace(hp, max_density=1.0)) == 0


def test_embedding_pruning_request_is_a_clear_error(setup):
    model, init, train, valid, g, hp = setup(prune_embeddings=True)
    with pytest.raises(ValueError, match="prune_embeddings"):
        _find("ctr", model, init, train, valid, g, hp, 2)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, 1.5])
def test_cvr_rate_must_be_a_fraction(bad):
    with pytest.raises(ValueError, match="cvr_rate"):
        PruneConfig(cvr_rate=bad)
    assert PruneConfig(cvr_rate=0.6).cvr_rate == 0.6


def test_rewind_point_is_reported_and_capped_not_silently_changed(capsys):
    from lt4rec.pruning.imp import rewind_point

    assert rewind_point(PruneConfig(rewind="init"), 100) == 0
    assert rewind_point(PruneConfig(rewind_fraction=0.25), 78) == 20
    assert rewind_point(PruneConfig(rewind_fraction=None, rewind_step=30), 100) == 30
    assert rewind_point(PruneConfig(rewind_fraction=None, rewind_step=200), 78) == 77
    assert "rewind step 200 capped at 77" in capsys.readouterr().err


def test_ticket_records_its_rewind_step(setup):
    model, init, train, valid, g, hp = setup(rewind_fraction=None, rewind_step=3)
    ticket = _find("ctr", model, init, train, valid, g, hp, 8)
    assert ticket.rewind_step == 3 and ticket.rewind_state is not None
    assert all(r.steps == 8 for r in ticket.rounds)


def test_cvr_search_with_an_all_rows_objective_trains_the_ctr_view_too(setup):
    model, init, train, valid, g, hp = setup()
    ctr_w0 = init["layers.0.bias.ctr"].clone()
    find_ticket(
        "cvr", model, init, lambda: train.batches(64, True, g), lambda: valid.batches(128, False),
        hp, TrainConfig(lr=0.01, cvr_loss="entire_space"), torch.device("cpu"), steps_per_round=4,
    )  # fmt: skip
    assert not torch.equal(model.layers[0].bias["ctr"].detach(), ctr_w0)  # pCTR was learnt
    model2, init2, *_ = setup()
    find_ticket(
        "cvr", model2, init2, lambda: train.batches(64, True, g),
        lambda: valid.batches(128, False), hp, TrainConfig(lr=0.01), torch.device("cpu"), 4,
    )  # fmt: skip
    assert torch.equal(model2.layers[0].bias["ctr"].detach(), init2["layers.0.bias.ctr"])
    model3, init3, *_ = setup(search_cvr_loss="clicked")  # the cheap search, whatever the loss
    find_ticket(
        "cvr", model3, init3, lambda: train.batches(64, True, g),
        lambda: valid.batches(128, False), dataclasses.replace(hp, search_cvr_loss="clicked"),
        TrainConfig(lr=0.01, cvr_loss="entire_space"), torch.device("cpu"), 4,
    )  # fmt: skip
    assert torch.equal(model3.layers[0].bias["ctr"].detach(), init3["layers.0.bias.ctr"])


def test_per_task_output_layers_leave_every_masked_layer_hidden():
    torch.manual_seed(0)
    schema = random_schema()
    cfg = ModelConfig(
        name="sparse_sharing", embedding_dim=4, bottom=(16, 8), tower=(4,), output_layer="per_task"
    )
    model = build_model(cfg, schema)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    train, valid = RandomDataset.make(schema, 512, seed=1), RandomDataset.make(schema, 256, seed=2)
    g = torch.Generator().manual_seed(0)
    hp = PruneConfig(rounds=1, rate=0.5)
    ticket = _find("ctr", model, init, train, valid, g, hp, 4)
    for name, m in ticket.mask.items():  # every layer pruned at the full rate: none is "output"
        assert m.mean().item() == pytest.approx(0.5, abs=0.01), name
