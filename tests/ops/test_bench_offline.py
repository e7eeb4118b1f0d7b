"""Smoke tests of the benchmark harnesses (ops/bench/) on tiny data."""

from __future__ import annotations

import json
from types import ModuleType

import pytest
import torch

from tests.ops.benchkit import load_bench


@pytest.fixture(scope="module")
def offline() -> ModuleType:
    return load_bench("offline")


TINY = [
    "--dataset", "sim", "--impressions", "5000", "--days", "2", "--seeds", "0",
    "--models", "shared_bottom", "sparse_sharing", "--repeats", "20", "--boot", "50",
    "--set", "prune.rounds=2", "--set", "data.hash_buckets=1009", "--set", "train.threads=1",
]  # fmt: skip


def test_offline_smoke_runs_tables_targets_and_resumes(offline, tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "bench"
    assert offline.main([*TINY, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    ((name, res),) = summary["datasets"].items()
    assert name == "sim-n5000-d2-s0"
    assert set(res["aggregate"]) == {"shared_bottom", "sparse_sharing"}
    ss = res["aggregate"]["sparse_sharing"]
    assert 0 <= ss["ctr_auc"][0] <= 1 and ss["ctr_auc"][2] == 1
    assert ss["density_ctr"][0] < 1.0  # two pruning rounds removed weights
    assert res["aggregate"]["shared_bottom"]["density_ctr"][0] == 1.0
    assert 0.5 < ss["oracle_ctr_auc"][0] <= 1  # simulator ground truth is reported
    tg = res["targets"]
    assert tg["evaluated"] and {"cvr", "ctr", "density", "oracle_gap"} <= set(tg)
    ((paired),) = res["paired"]  # one seed: sparse_sharing vs its best other per task
    assert paired["seed"] == 0 and paired["cvr"]["best_other"] == "shared_bottom"
    assert paired["cvr"]["n_boot"] == 50 and paired["ctr"]["margin"] == -0.002
    assert paired["cvr"]["ci_low"] <= paired["cvr"]["diff"] <= paired["cvr"]["ci_high"]
    assert tg["density"]["holds"] is (tg["density"]["max_task_density"] <= 0.30)
    # pooled over seeds (one here): against the best other on seed means, same comparator
    pooled = res["pooled"]
    assert pooled["cvr"]["best_other"] == tg["cvr"]["best_other"] and pooled["cvr"]["seeds"] == [0]
    want = tg["cvr"]["sparse_sharing"] - tg["cvr"]["best_other_auc"]
    assert pooled["cvr"]["diff"] == pytest.approx(want, abs=1e-9)
    assert pooled["cvr"]["holds"] is tg["cvr"]["holds"]
    sparse = res["sparse_inference"]["0"]
    for task in ("ctr", "cvr"):
        for batch in sparse[task]["batches"].values():
            assert max(batch["max_abs_diff"].values()) <= 1e-5
    md = (out / "summary.md").read_text()
    assert "| sparse_sharing | 1 |" in md and "| shared_bottom | 1 |" in md
    assert "--impressions 5000" in md and "Targets (seed means)" in md
    assert "| oracle (true probabilities) |" in md and "Paired test per seed" in md
    assert "Pooled paired test" in md and "better (Δ > 0)" in md
    runs = out / "runs" / name
    assert {p.name for p in runs.glob("*.json")} >= {
        "shared_bottom-seed0.json",
        "sparse_sharing-seed0.json",
    }
    assert (runs / "sparse_sharing-seed0.pred.npz").is_file()
    # Resumable: a second invocation re-uses every run and reproduces the summary.
    mtimes = {p: p.stat().st_mtime_ns for p in runs.glob("*.json")}
    capsys.readouterr()
    assert offline.main([*TINY, "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("[skip]") == 2
    assert {p: p.stat().st_mtime_ns for p in runs.glob("*.json")} == mtimes
    again = json.loads((out / "summary.json").read_text())
    assert again["datasets"][name]["aggregate"] == res["aggregate"]
    # A sparse_sharing run whose checkpoint is missing is redone (the export needs it).
    ckpt = runs / "sparse_sharing-seed0.ckpt"
    ckpt.unlink()
    (runs / "sparse_sharing-seed0.sparse.json").unlink()
    assert offline.main([*TINY, "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("[skip]") == 1
    assert ckpt.is_file() and (runs / "sparse_sharing-seed0.sparse.json").is_file()
    # The sparse inference script benchmarks the trained checkpoint's task subnetworks.
    bench = load_bench("sparse_inference")
    js = tmp_path / "ckpt.json"
    argv = ["--densities", "0.3", "--dims", "8", "4", "1", "--batch-sizes", "4", "--repeats", "3",
            "--checkpoint", str(ckpt), "--json-out", str(js)]  # fmt: skip
    assert bench.main(argv) == 0
    result = json.loads(js.read_text())
    assert {"sparse_sharing-seed0 ctr", "sparse_sharing-seed0 cvr"} <= set(result)
    assert bench.main([*argv[:-2], "--checkpoint", str(tmp_path / "missing.ckpt")]) == 2


def test_offline_rejects_bad_override(offline, tmp_path, capsys):
    code = offline.main(["--seeds", "0", "--out", str(tmp_path), "--set", "train.nope=1"])
    assert code == 2
    assert "nope" in capsys.readouterr().err


def test_offline_aggregate_and_targets(offline):
    runs = {
        "shared_bottom": [{"ctr_auc": 0.70, "cvr_auc": 0.60}, {"ctr_auc": 0.72, "cvr_auc": 0.62}],
        "sparse_sharing": [
            {"ctr_auc": 0.70, "cvr_auc": 0.63, "density_ctr": 0.2, "density_cvr": 0.25},
            {"ctr_auc": 0.70, "cvr_auc": 0.63, "density_ctr": 0.2, "density_cvr": 0.25},
        ],
    }
    agg = offline.aggregate(runs)
    mean, std, n = agg["shared_bottom"]["ctr_auc"]
    assert mean == pytest.approx(0.71) and std == pytest.approx(0.0141421, rel=1e-4) and n == 2
    tg = offline.targets(agg)
    assert tg["cvr"]["holds"] and tg["cvr"]["best_other"] == "shared_bottom"  # 0.63 >= 0.615
    assert tg["ctr"]["holds"] is False  # 0.70 < 0.71 - 0.002
    assert tg["ctr"]["best_other"] == "shared_bottom" and "oracle_gap" not in tg
    assert tg["density"]["holds"] and tg["density"]["max_task_density"] == pytest.approx(0.25)


def test_sparse_inference_script_smoke(tmp_path, capsys):
    torch.set_num_threads(1)
    bench = load_bench("sparse_inference")
    out = tmp_path / "sparse.json"
    argv = ["--dims", "40", "32", "16", "1", "--densities", "0.3", "--batch-sizes", "1", "64",
            "--repeats", "10", "--json-out", str(out)]  # fmt: skip
    assert bench.main(argv) == 0
    result = json.loads(out.read_text())
    (case,) = result.values()
    assert set(case["batches"]) == {"1", "64"}
    assert case["bytes"]["sparse_memory"] < case["bytes"]["dense_masked"]
    assert "target (>= 2x latency or memory)" in capsys.readouterr().out


@pytest.fixture(scope="module")
def tune() -> ModuleType:
    return load_bench("tune")


def test_tune_gives_every_model_the_budget_on_validation_only_and_resumes(
    tune, tmp_path, monkeypatch, capsys
):
    import lt4rec.train.fit as fit

    torch.set_num_threads(1)
    seen: list[tuple[str, str]] = []
    real = fit.run_fit

    def spy(cfg, train, valid, test, *a, **kw):
        seen.append((str(valid), str(test)))
        return real(cfg, train, valid, test, *a, **kw)

    monkeypatch.setattr(fit, "run_fit", spy)
    profiles = tmp_path / "profiles.toml"
    monkeypatch.setattr(tune, "PROFILE_FILE", profiles)
    argv = ["--impressions", "3000", "--days", "2", "--trials", "3", "--startup", "1",
            "--models", "shared_bottom", "sparse_sharing", "--out", str(tmp_path / "t"),
            "--set", "data.hash_buckets=1009", "--set", "train.threads=1",
            "--write-profiles"]  # fmt: skip
    assert tune.main(argv) == 0
    assert len(seen) == 6 and all(v == t and v.endswith("valid.parquet") for v, t in seen)
    best = json.loads((tmp_path / "t" / "best.json").read_text())
    assert {m: r["trials"] for m, r in best.items()} == {"shared_bottom": 3, "sparse_sharing": 3}
    first = json.loads((tmp_path / "t" / "sparse_sharing" / "trial-0.json").read_text())
    assert first["params"] == {} and first["settings"] == tune.FIXED  # trial 0: the defaults
    later = json.loads((tmp_path / "t" / "sparse_sharing" / "trial-1.json").read_text())
    assert later["valid"]["density_ctr"] <= 0.3 and later["valid"]["density_cvr"] <= 0.3
    import tomllib

    written = tomllib.loads(profiles.read_text())
    assert set(written) == {"shared_bottom", "sparse_sharing"}
    assert "threads" not in written["shared_bottom"].get("train", {})
    # resumable: a second run with the same budget trains nothing, a larger one only the rest
    assert tune.main(argv) == 0 and len(seen) == 6
    argv[argv.index("--trials") + 1] = "4"
    assert tune.main(argv) == 0 and len(seen) == 8


def test_ablate_compares_variants_on_validation(tmp_path, capsys):
    ablate = load_bench("ablate")
    torch.set_num_threads(1)
    argv = ["--impressions", "3000", "--days", "2", "--model", "sparse_sharing", "--seeds", "0",
            "--variant", "base=", "--variant", "own=model.output_layer=per_task,prune.rounds=1",
            "--out", str(tmp_path), "--set", "data.hash_buckets=1009", "--set",
            "train.threads=1"]  # fmt: skip
    assert ablate.main(argv) == 0
    out = capsys.readouterr().out
    assert "| own | `model.output_layer=per_task prune.rounds=1` |" in out
    rec = json.loads((tmp_path / "sparse_sharing" / "own-seed0.json").read_text())
    assert rec["sets"] == ["model.output_layer=per_task", "prune.rounds=1"]
    assert len(rec["pruning"]["ctr"]["rounds"]) == 2
