# mypy: allow-untyped-defs
"""Every registered model passes the shared check; registry and sparse-sharing specifics."""

from __future__ import annotations

import dataclasses
from typing import get_args

import pytest
import torch

from lt4rec.config.model import ModelConfig, ModelName
from lt4rec.data.batch import TASKS
from lt4rec.models import MODELS, EmbeddingBlock, SparseSharing, build_model
from lt4rec.testing import check_model, random_batch, random_schema

ALL = list(get_args(ModelName))  # every name the config accepts


SMALL = {"embedding_dim": 4, "bottom": (16, 8), "tower": (4,), "experts": 2, "expert_hidden": (8,)}


def test_registry_has_all_nine_models():
    assert sorted(MODELS) == sorted(ALL)


@pytest.mark.parametrize("name", ALL)
def test_check_model(name):
    torch.set_num_threads(1)
    check_model(name)  # the default configuration: dot interaction


@pytest.mark.parametrize("name", ALL)
def test_check_model_without_interaction(name):
    check_model(name, cfg=ModelConfig(name=name, interaction="none", **SMALL))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "variant", "cvr_loss"),
    [
        ("sparse_sharing", {"output_layer": "per_task"}, "clicked"),
        ("sparse_sharing", {"output_layer": "per_task", "interaction": "none"}, "entire_space"),
        ("sparse_sharing", {}, "entire_space"),
        ("sparse_sharing", {}, "counterfactual"),
        ("shared_bottom", {}, "counterfactual"),
        ("mmoe", {"dropout": 0.2}, "entire_space"),
        ("escm2", {"ips_weight": 0.5, "ctcvr_weight": 2.0}, "clicked"),
    ],
)
def test_check_model_variants(name, variant, cvr_loss):
    cfg = ModelConfig(name=name, **{**SMALL, **variant})  # type: ignore[arg-type]
    check_model(name, cfg=cfg, cvr_loss=cvr_loss)


@pytest.mark.parametrize("name", ALL)
def test_check_model_without_multi_or_dense_fields(name):
    check_model(name, schema=random_schema(n_sparse=2, n_multi=0, n_dense=0))


def test_unknown_model_name_is_a_clear_error():
    cfg = dataclasses.replace(ModelConfig(), name="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown model 'nope'.*sparse_sharing"):
        build_model(cfg, random_schema())


def test_schema_mismatch_is_a_clear_error():
    model = build_model(
        ModelConfig(name="shared_bottom", bottom=(8,), tower=(4,)), random_schema(n_sparse=3)
    )
    bad = random_batch(random_schema(n_sparse=2), 4)
    with pytest.raises(ValueError, match="sparse"):
        model(bad)


def test_multi_valued_fields_mean_pool_ignoring_padding():
    schema = random_schema(n_sparse=0, n_multi=1, n_dense=0, multi_max_len=3)
    model = build_model(
        ModelConfig(name="shared_bottom", embedding_dim=2, bottom=(4,), tower=(2,)), schema
    )
    emb = model.embeddings
    assert isinstance(emb, EmbeddingBlock)
    b = random_batch(schema, 2)
    multi = torch.tensor([[[5, 7, 0]], [[0, 0, 0]]])
    b = dataclasses.replace(b, multi=multi)
    out = emb(b)  # [2, 2]
    assert torch.allclose(out[0], (emb.weight[5] + emb.weight[7]) / 2)
    assert torch.equal(out[1], torch.zeros(2))


@pytest.mark.parametrize("output_layer", ["shared", "per_task"])
def test_sparse_sharing_masks_are_buffers_and_export_reproduces_predictions(output_layer):
    torch.manual_seed(0)
    schema = random_schema()
    cfg = ModelConfig(
        name="sparse_sharing",
        embedding_dim=4,
        bottom=(16, 8),
        tower=(4,),
        output_layer=output_layer,
    )
    model = build_model(cfg, schema)
    assert isinstance(model, SparseSharing)
    g = torch.Generator().manual_seed(1)
    for t in TASKS:
        model.set_masks(
            t,
            {
                k: (torch.rand(m.shape, generator=g) < 0.5).float()
                for k, m in model.masks()[t].items()
            },
        )
    names = dict(model.named_buffers())
    assert {f"layers.0.mask_{t}" for t in TASKS} <= set(names)
    assert "layers.0.mask_ctr" in model.state_dict()
    b = random_batch(schema, 32)
    model.eval()
    with torch.no_grad():
        logits = model(b)
        x = model.embed(b)
        for t in TASKS:
            h = x
            layers = model.export_task_layers(t)
            for lay in layers:
                h = h @ (lay.weight * lay.mask).T + lay.bias
                if lay.activation == "relu":
                    h = torch.relu(h)
            assert torch.allclose(h.squeeze(-1), logits[t], atol=1e-6)
            assert layers[-1].activation == "none" and layers[0].mask.dtype == torch.bool
            assert len(layers) == 4 and layers[-1].weight.shape == (1, 4)
    if output_layer == "per_task":  # own output layers: not masked, identical at init
        assert model.head is not None and "layers.2.weight" in model.masks()["ctr"]
        assert "layers.3.weight" not in model.masks()["ctr"]
        assert set(model.own_parameters("cvr")) >= {"head.weight.cvr", "head.bias.cvr"}


def test_same_seed_same_init_for_every_task():
    torch.manual_seed(5)
    a = build_model(ModelConfig(name="sparse_sharing", bottom=(8,), tower=(4,)), random_schema())
    torch.manual_seed(5)
    b = build_model(ModelConfig(name="sparse_sharing", bottom=(8,), tower=(4,)), random_schema())
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(v, w), k
    assert isinstance(a, SparseSharing)
    for lay in a.masked_layers():
        assert torch.equal(lay.bias["ctr"], lay.bias["cvr"])


def test_dot_interaction_is_the_upper_triangle_of_field_dot_products():
    schema = random_schema(n_sparse=3, n_multi=1, n_dense=2)
    emb = EmbeddingBlock(schema, 4, "dot")
    assert emb.out_dim == 4 * 4 + 2 + 6  # flat fields, dense, C(4, 2) pairs
    b = random_batch(schema, 5)
    fields, _ = emb.lookup(b)
    assert fields is not None and fields.shape == (5, 4, 4)
    out = emb(b)
    want = [fields[:, i] @ fields[:, j].T for i in range(4) for j in range(i + 1, 4)]
    dots = torch.stack([w.diagonal() for w in want], dim=1)  # [5, 6]
    assert torch.allclose(out[:, 18:], dots, atol=1e-6)
    assert torch.equal(out[:, :16], fields.flatten(1)) and torch.equal(out[:, 16:18], b.dense)
    plain = EmbeddingBlock(schema, 4, "none")
    assert plain.out_dim == 18 and set(plain.state_dict()) == set(emb.state_dict())
    with pytest.raises(ValueError, match="unknown interaction"):
        EmbeddingBlock(schema, 4, "cross")


def test_own_parameters_follow_the_task_keyed_names():
    schema = random_schema()
    for name in ("single", "mmoe", "aitm", "cross_stitch"):
        model = build_model(ModelConfig(name=name, **SMALL), schema)  # type: ignore[arg-type]
        own = model.own_parameters("cvr")
        assert own and all(".cvr." in f".{n}." for n in own)
        assert not set(own) & set(model.own_parameters("ctr"))
    sb = build_model(ModelConfig(name="shared_bottom", **SMALL), schema)
    assert not any(n.startswith(("bottom", "embeddings")) for n in sb.own_parameters("cvr"))
