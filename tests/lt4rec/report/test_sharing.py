# mypy: allow-untyped-defs
"""Sharing report: shared / private / pruned fractions per layer and overall; plots."""

from __future__ import annotations

import pytest
import torch

from lt4rec.report import format_sharing_table, sharing_report
from lt4rec.report.plots import plot_mask_overlap, plot_pruning_curve


def test_fractions_per_layer_and_total():
    masks = {
        "ctr": {"a": torch.tensor([1.0, 1.0, 0.0, 0.0]), "b": torch.tensor([1.0, 1.0])},
        "cvr": {"a": torch.tensor([1.0, 0.0, 1.0, 0.0]), "b": torch.tensor([1.0, 0.0])},
    }
    r = sharing_report(masks)
    a = r["layers"]["a"]
    assert a["shared_fraction"] == 0.25 and a["pruned_fraction"] == 0.25
    assert a["private_fraction_ctr"] == 0.25 and a["private_fraction_cvr"] == 0.25
    assert a["density_ctr"] == 0.5 and a["density_cvr"] == 0.5
    t = r["total"]
    assert t["numel"] == 6
    assert t["shared_fraction"] == pytest.approx(2 / 6)
    assert t["density_ctr"] == pytest.approx(4 / 6) and t["density_cvr"] == pytest.approx(3 / 6)
    assert t["shared_of_used"] == pytest.approx(2 / 5)
    for row in r["layers"].values():  # the four categories partition every layer
        parts = row["shared_fraction"] + row["pruned_fraction"]
        parts += row["private_fraction_ctr"] + row["private_fraction_cvr"]
        assert parts == pytest.approx(1.0)
    assert "shared_fraction" in format_sharing_table(r)


def test_dense_model_report_is_empty():
    assert sharing_report({}) == {"layers": {}, "total": {}}


def test_plots_are_written(tmp_path):
    rounds = [{"density": 1.0, "valid_auc": 0.7}, {"density": 0.5, "valid_auc": 0.72}]
    p1 = plot_pruning_curve({"ctr": rounds, "cvr": rounds}, tmp_path / "curve.png")
    layers = {"l0": {"shared_fraction": 0.5, "private_fraction_ctr": 0.1, "pruned_fraction": 0.4}}
    p2 = plot_mask_overlap(layers, ["ctr", "cvr"], tmp_path / "overlap.png")
    for p in (p1, p2):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
