# mypy: allow-untyped-defs
"""Delayed-feedback losses: row roles, weight formulas, unbiasedness, the shared check."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch

from lt4rec.config.feedback import FeedbackConfig
from lt4rec.config.model import ModelConfig
from lt4rec.data.batch import Batch
from lt4rec.models.blocks import MultiTaskModel
from lt4rec.testing import check_feedback_loss, random_batch, random_schema
from lt4rec.train.delayed import KIND_CODES, LOSSES, StreamMeta, make_feedback_loss
from lt4rec.train.es_dfm import es_dfm_weights
from lt4rec.train.feedback_rows import DUP, FINAL, FIRST, SKIP, target_rows
from lt4rec.train.fnw import fnw_weights
from lt4rec.train.heads_fit import make_heads
from lt4rec.train.loop import make_optimizer, train_step

SCHEMA = random_schema()
SMALL = FeedbackConfig(heads_embedding_dim=4, heads_hidden=(8,))
F, R, D = KIND_CODES["final"], KIND_CODES["fresh"], KIND_CODES["delayed_positive"]


pytestmark = pytest.mark.usefixtures("one_thread")


class BiasModel(MultiTaskModel):
    """One logit per task, the same for every row: its minimiser is a rate."""

    name = "bias"

    def __init__(self, ctr: float = 0.0, cvr: float = 0.0) -> None:
        super().__init__(ModelConfig(), SCHEMA)
        self.b = torch.nn.Parameter(torch.tensor([ctr, cvr]))

    def forward(self, batch):
        ones = torch.ones(len(batch))
        return {"ctr": self.b[0] * ones, "cvr": self.b[1] * ones}


def rows_batch(kinds, clicks, convs):
    """A batch with the given kinds and labels, every row with the same features."""
    n = len(kinds)
    b = random_batch(SCHEMA, 1, torch.Generator().manual_seed(1))
    c = torch.tensor(clicks, dtype=torch.float32)
    v = torch.tensor(convs, dtype=torch.float32) * c
    batch = Batch(b.sparse.expand(n, -1), b.multi.expand(n, -1, -1), b.dense.expand(n, -1), c, v)
    return batch, StreamMeta(torch.tensor(kinds), torch.zeros(n))


def stream(n, clicks, convs, observed_clicks=0, observed_convs=0):
    """An exact stream: n impressions, ``clicks`` clicked, ``convs`` converted; the fresh
    rows show the first ``observed_*`` of them (es_dfm wait), the rest come as duplicates."""
    kinds, ck, cv = [], [], []
    for i in range(n):
        seen_c, seen_v = i < observed_clicks, i < observed_convs
        kinds.append(R), ck.append(int(seen_c)), cv.append(int(seen_v))
        if i < clicks and not seen_c:
            kinds.append(D), ck.append(1), cv.append(0)
        if i < convs and not seen_v:
            kinds.append(D), ck.append(1), cv.append(1)
    return rows_batch(kinds, ck, cv)


def test_roles_follow_the_table():
    kinds = [R, R, R, D, D, F, F]
    clicks = [0, 1, 1, 1, 1, 1, 0]
    convs = [0, 0, 1, 0, 1, 1, 0]
    batch, meta = rows_batch(kinds, clicks, convs)
    want = {
        "ctr": [FIRST, FIRST, FIRST, DUP, SKIP, FINAL, FINAL],
        "cvr": [SKIP, FIRST, FIRST, FIRST, DUP, FINAL, FINAL],
        "ctcvr": [FIRST, FIRST, FIRST, SKIP, DUP, FINAL, FINAL],
    }
    for target, roles in want.items():
        assert target_rows(batch, meta, target).role.tolist() == roles, target
    assert target_rows(batch, meta, "cvr").label.tolist() == [0, 0, 1, 0, 1, 1, 0]


def test_meta_must_match_the_batch():
    batch, meta = rows_batch([R, D], [0, 1], [0, 0])
    with pytest.raises(ValueError, match="rows"):
        target_rows(batch, StreamMeta(meta.kind[:1], meta.elapsed_s[:1]), "ctr")
    with pytest.raises(ValueError, match="kind code 7"):
        target_rows(batch, StreamMeta(torch.tensor([0, 7]), meta.elapsed_s), "ctr")


def test_fnw_weights_hand_computed():
    batch, meta = rows_batch([R, D, D, F], [0, 1, 1, 0], [0, 0, 1, 0])
    model = BiasModel(ctr=math.log(0.2 / 0.8), cvr=math.log(0.5 / 0.5))
    w = make_feedback_loss("fnw").weights(model, batch, meta)
    assert w is not None
    # CTR p = 0.2: fresh negative (0.8)(1.2); level-1 positive 1.2; level 2 skipped; final 1
    assert w["ctr"].tolist() == pytest.approx([0.96, 1.2, 0.0, 1.0], abs=1e-6)
    # CVR p = 0.5: fresh unclicked 0; level 1 = first observation, negative (0.5)(1.5);
    # level 2 = duplicate positive 1.5; final 1
    assert w["cvr"].tolist() == pytest.approx([0.0, 0.75, 1.5, 1.0], abs=1e-6)
    assert fnw_weights(torch.tensor(0.2)) == (pytest.approx(1.2), pytest.approx(0.96))


def test_fnw_entire_space_uses_ctcvr():
    batch, meta = rows_batch([R, D, D], [0, 1, 1], [0, 0, 1])
    model = BiasModel(ctr=0.0, cvr=0.0)  # p_ctcvr = 0.25
    w = make_feedback_loss("fnw", cvr_loss="entire_space").weights(model, batch, meta)
    assert w is not None
    assert w["cvr"].tolist() == pytest.approx([0.75 * 1.25, 0.0, 1.25], abs=1e-6)


def fit_rates(loss, batch, meta, steps=300, lr=0.05):
    model = BiasModel()
    opt = make_optimizer(model, lr)
    for _ in range(steps):
        w = loss.weights(model, batch, meta)
        train_step(model, batch, opt, weights=w)
        loss.update(model, batch, meta)
    return torch.sigmoid(model.b.detach()).tolist()


def test_fnw_minimiser_recovers_the_true_rates():
    """Fake negatives + duplicates: FNW converges to the true CTR / CVR, plain BCE doesn't."""
    batch, meta = stream(200, clicks=60, convs=18)
    ctr, cvr = fit_rates(make_feedback_loss("fnw"), batch, meta)
    assert ctr == pytest.approx(0.3, abs=0.005) and cvr == pytest.approx(0.3, abs=0.005)
    ctr_v, cvr_v = fit_rates(make_feedback_loss("vanilla"), batch, meta)
    assert ctr_v == pytest.approx(0.3 / 1.3, abs=0.005)  # biased: p / (1 + p)
    assert cvr_v == pytest.approx(0.3 / 1.3, abs=0.005)


def constant_heads(rates):
    """Heads predicting the given probability for every row: ``{output: p}``."""
    heads = make_heads(SCHEMA, SMALL, ("ctr", "cvr"))
    out = heads.mlp[-1]
    with torch.no_grad():
        out.weight.zero_()
        for name, p in rates.items():
            out.bias[heads.outputs.index(name)] = math.log(p / (1 - p))
    return heads


def es_dfm(rates, online=False, lr=1e-4):
    cfg = dataclasses.replace(SMALL, heads_online=online, heads_online_lr=lr)
    return make_feedback_loss("es_dfm", heads=constant_heads(rates), wait_s=900, cfg=cfg)


TRUE = {  # the stream below: 200 impressions, 60 clicks (40 seen at once), 20 conversions
    "ctr_dp": 20 / 200,
    "ctr_tn": 140 / 160,
    "cvr_dp": 12 / 60,  # 8 conversions seen in the fresh example, 12 came later
    "cvr_tn": 40 / 52,
}
ES_STREAM = {"n": 200, "clicks": 60, "convs": 20, "observed_clicks": 40, "observed_convs": 8}


def test_es_dfm_weights_with_known_heads():
    batch, meta = rows_batch([R, R, D, D, F], [0, 1, 1, 1, 1], [0, 0, 0, 1, 1])
    rates = {"ctr_dp": 0.1, "ctr_tn": 0.8, "cvr_dp": 0.25, "cvr_tn": 0.6}
    w = es_dfm(rates).weights(BiasModel(), batch, meta)
    assert w is not None
    assert w["ctr"].tolist() == pytest.approx([1.1 * 0.8, 1.1, 1.1, 0.0, 1.0], abs=1e-5)
    assert w["cvr"].tolist() == pytest.approx([0.0, 1.25 * 0.6, 1.25 * 0.6, 1.25, 1.0], abs=1e-5)
    assert es_dfm_weights(torch.tensor(0.25), torch.tensor(0.6)) == (
        pytest.approx(1.25),
        pytest.approx(0.75),
    )


def test_es_dfm_with_true_heads_recovers_the_true_rates():
    batch, meta = stream(**ES_STREAM)
    ctr, cvr = fit_rates(es_dfm(TRUE), batch, meta)
    assert ctr == pytest.approx(0.3, abs=0.005) and cvr == pytest.approx(1 / 3, abs=0.005)
    ctr_v, cvr_v = fit_rates(make_feedback_loss("vanilla"), batch, meta)
    assert ctr_v == pytest.approx(60 / 220, abs=0.005)  # positives / (rows seen by CTR)
    assert cvr_v == pytest.approx(20 / 72, abs=0.005)


def test_online_heads_converge_to_the_stream_rates_and_frozen_heads_do_not_move():
    batch, meta = stream(**ES_STREAM)
    start = {k: 0.5 for k in TRUE}
    online = es_dfm(start, online=True, lr=0.05)
    frozen = es_dfm(start)
    before = {k: v.clone() for k, v in frozen.heads.state_dict().items()}
    for _ in range(250):
        online.update(BiasModel(), batch, meta)
        frozen.update(BiasModel(), batch, meta)
    p = online.heads.probs(batch)
    for k, want in TRUE.items():
        assert float(p[k].mean()) == pytest.approx(want, abs=0.01), k
    for k, v in frozen.heads.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_es_dfm_state_round_trip_and_refusals():
    loss = es_dfm(TRUE, online=True, lr=0.01)
    batch, meta = stream(50, 20, 5, observed_clicks=10, observed_convs=2)
    loss.update(BiasModel(), batch, meta)
    state = loss.state_dict()
    assert any(k.startswith("heads_opt/") for k in state) and int(state["wait_s"]) == 900
    clone = es_dfm({k: 0.5 for k in TRUE}, online=True, lr=0.01)
    clone.load_state_dict(state)
    got = clone.state_dict()
    assert set(got) == set(state) and all(torch.equal(got[k], v) for k, v in state.items())
    other = make_feedback_loss("es_dfm", heads=constant_heads(TRUE), wait_s=60)
    with pytest.raises(ValueError, match="wait 900s, not 60s"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="no 'wait_s'"):
        other.load_state_dict({})
    with pytest.raises(ValueError, match="unknown es_dfm state"):
        loss.load_state_dict({**state, "junk": torch.zeros(1)})


def test_make_feedback_loss_defaults_and_errors():
    assert make_feedback_loss("bce").weights(BiasModel(), *rows_batch([F], [0], [0])) is None
    assert make_feedback_loss("fnw").policy == "fnw"
    assert make_feedback_loss("vanilla").policy == "es_dfm"
    with pytest.raises(ValueError, match="needs pre-trained heads"):
        make_feedback_loss("es_dfm")
    with pytest.raises(ValueError, match="unknown delayed-feedback loss"):
        make_feedback_loss("nope")
    with pytest.raises(ValueError, match="cvr_loss"):
        make_feedback_loss("fnw", cvr_loss="bogus")
    heads = make_heads(SCHEMA, FeedbackConfig(), ("ctr", "cvr"))
    with pytest.raises(ValueError, match="heads have targets"):
        make_feedback_loss("es_dfm", heads=heads, wait_s=900, cvr_loss="entire_space")


_seeds = itertools.count(1)


def _factory(name):
    if name != "es_dfm":
        return lambda: make_feedback_loss(name)

    def make():  # online heads, a different init each time (the round trip must load)
        cfg = dataclasses.replace(SMALL, heads_online=True, heads_seed=next(_seeds))
        heads = make_heads(SCHEMA, cfg, ("ctr", "cvr"))
        return make_feedback_loss("es_dfm", heads=heads, wait_s=900, cfg=cfg)

    return make


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_passes_the_shared_check(name):
    check_feedback_loss(_factory(name), SCHEMA)


def test_the_check_catches_a_broken_loss():
    class Negative:
        name, policy = "fnw", "fnw"

        def weights(self, model, batch, meta):
            return {"ctr": -torch.ones(len(batch))}

        def update(self, model, batch, meta):
            return None

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            return None

    with pytest.raises(AssertionError, match="finite and >= 0"):
        check_feedback_loss(Negative, SCHEMA)
