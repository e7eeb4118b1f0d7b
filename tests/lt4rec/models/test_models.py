# mypy: allow-untyped-defs
"""Every registered model passes the shared check; registry and sparse-sharing specifics."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lt4rec.config.model import ModelConfig
from lt4rec.data.batch import TASKS
from lt4rec.models import MODELS, EmbeddingBlock, SparseSharing, build_model
from lt4rec.testing import check_model, random_batch, random_schema

ALL = ["single", "shared_bottom", "esmm", "mmoe", "ple", "cross_stitch", "sparse_sharing"]


def test_registry_has_all_seven_models():
    assert sorted(MODELS) == sorted(ALL)


@pytest.mark.parametrize("name", ALL)
def test_check_model(name):
    torch.set_num_threads(1)
    check_model(name)


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


def test_sparse_sharing_masks_are_buffers_and_export_reproduces_predictions():
    torch.manual_seed(0)
    schema = random_schema()
    model = build_model(
        ModelConfig(name="sparse_sharing", embedding_dim=4, bottom=(16, 8), tower=(4,)), schema
    )
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
