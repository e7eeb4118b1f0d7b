"""The delayed-feedback benchmark on tiny data, and the contract it relies on: what the
joiner's ``es_dfm`` / ``fnw`` streams deliver per impression is what the row roles and the
ES-DFM heads' labels (computed from the archive) say they deliver."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
import torch

from lt4rec.config import JoinerConfig, SimConfig
from lt4rec.data.batch import Batch
from lt4rec.data.simulator import simulate
from lt4rec.train.delayed import StreamMeta
from lt4rec.train.feedback_rows import DUP, FIRST, target_rows
from lt4rec.train.heads_fit import delay_times, head_labels
from streamer.archive.writer import read_archive
from tests.ops.benchkit import load_bench


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    work = tmp_path_factory.mktemp("delayed")
    simulate(SimConfig(impressions=3000, days=2, seed=4, users=300, items=200), work / "sim")
    streams = load_bench("delayed_streams").join_streams(
        work / "sim", JoinerConfig(), ("es_dfm", "fnw"), work / "archive"
    )
    return streams, read_archive(work / "archive")


def _roles(s, target: str) -> tuple[Counter[str], Counter[str]]:
    """Per impression: how many FIRST and DUP rows ``target`` sees in stream ``s``."""
    n = len(s)
    z = torch.zeros((n, 1), dtype=torch.int64)
    batch = Batch(z, z.view(n, 1, 1), torch.zeros((n, 0)), torch.from_numpy(s.click),
                  torch.from_numpy(s.conversion))  # fmt: skip
    rows = target_rows(batch, StreamMeta(torch.from_numpy(s.kind), torch.zeros(n)), target)
    ids = np.array(s.impression_id)
    return Counter(ids[rows.mask(FIRST).numpy()]), Counter(ids[rows.mask(DUP).numpy()])


@pytest.mark.parametrize("target", ["ctr", "cvr", "ctcvr"])
def test_streams_deliver_what_roles_and_head_labels_say(joined, target):
    streams, archive = joined
    ids = archive.column("impression_id").to_pylist()
    click = torch.tensor(archive.column("click").to_numpy(), dtype=torch.float32)
    conv = torch.tensor(archive.column("conversion").to_numpy(), dtype=torch.float32)
    assert len(ids) == 3000 and len(set(ids)) == 3000  # one final row per impression
    for policy, wait in (("es_dfm", JoinerConfig().es_dfm_wait_s), ("fnw", -1)):
        lab = head_labels(delay_times(archive), click, conv, wait, target)
        first, dup = _roles(streams[policy], target)
        want_rows = {i for i, r in zip(ids, lab.rows.tolist(), strict=True) if r}
        assert set(first) == want_rows and set(first.values()) == {1}, policy
        want_dup = {i for i, d in zip(ids, lab.dp.tolist(), strict=True) if d}
        assert set(dup) == want_dup and set(dup.values()) <= {1}, policy
    assert len(streams["fnw"]) == 3000 + int(click.sum()) + int(conv.sum())
    fresh = streams["fnw"].kind == 1
    assert streams["fnw"].click[fresh].sum() == 0  # fnw: every fresh example is negative


def test_benchmark_smoke(tmp_path, capsys):
    torch.set_num_threads(1)
    bench = load_bench("delayed_feedback")
    out = tmp_path / "bench"
    args = ["--impressions", "4000", "--days", "3", "--pretrain-days", "2", "--seeds", "0",
            "--set", "data.hash_buckets=1009", "--set", "prune.rounds=1", "--set",
            "model.bottom=[16]", "--set", "model.tower=[8]", "--out", str(out)]  # fmt: skip
    assert bench.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    agg = summary["weighted"]
    assert set(agg) == set(bench.proto.METHODS)
    for m, v in agg.items():
        for t in ("ctr", "cvr", "ctcvr"):
            assert 0 <= v[f"{t}_auc"][0] <= 1 and v[f"{t}_nll"][0] > 0, (m, t)
    for t in ("ctr", "cvr", "ctcvr"):  # nan where Oracle - Vanilla < 0.001 (tiny data)
        ri_v, ri_o = agg["vanilla"][f"{t}_ri_auc"][0], agg["oracle"][f"{t}_ri_auc"][0]
        assert (math.isnan(ri_v) and math.isnan(ri_o)) or (ri_v == 0.0 and ri_o == 1.0)
    run = summary["runs"][0]
    assert run["methods"]["pretrained"]["trained_examples"] == 0
    assert run["stream_examples"]["fnw"] > run["stream_examples"]["es_dfm"] >= 4000
    assert run["methods"]["vanilla"]["trained_examples"] > 0
    md = (out / "summary.md").read_text()
    assert "| es_dfm_online |" in md and "RI-AUC" in md and "Targets" in md
    assert "Paired with Vanilla" in md and md.startswith("`nice -n 10 .venv/bin/python")
    # the second run reuses the joined streams (OUT/work) and is deterministic
    (out / "summary.md").unlink()
    assert bench.main([*args, "--methods", "vanilla", "es_dfm", "oracle"]) == 0
    again = json.loads((out / "summary.json").read_text())
    for m in ("vanilla", "es_dfm", "oracle"):
        assert again["weighted"][m] == agg[m], m
    assert len(list((out / "work").iterdir())) == 1
    assert bench.main(["--from-json", str(out / "summary.json")]) == 0
    assert "--methods vanilla es_dfm oracle" in (out / "summary.md").read_text()
