"""The main job's HTML report: plots embedded, tables escaped, empty inputs tolerated."""

from __future__ import annotations

import base64
import re

from lt4rec.report.html import write_html_report


def test_report_embeds_plots_and_tables(tmp_path):
    summary = {
        "auc_series": [
            {"t": t, "version": 1 + (t > 5), "ctr_auc": 0.6 + t / 100, "cvr_auc": 0.55}
            for t in range(10)
        ],
        "versions": [
            {"version": 1, "kind": "offline", "density_ctr": 0.29, "density_cvr": 0.16,
             "shared_fraction": 0.1},
            {"version": 2, "kind": "repruned", "density_ctr": 0.3, "density_cvr": 0.2,
             "shared_fraction": 0.12},
        ],
        "delayed_feedback": {
            "vanilla": {"auc": 0.70, "nll": 0.41}, "es_dfm": {"auc": 0.71, "nll": 0.40}
        },
        "sections": {"Swaps <worker>": {"pause_ms": 12.5, "version": "v2 & more"}},
    }  # fmt: skip
    path = write_html_report(summary, tmp_path / "r" / "report.html", title="demo <run>")
    doc = path.read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', doc)
    assert len(images) == 3
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert "demo &lt;run&gt;" in doc and "Swaps &lt;worker&gt;" in doc and "v2 &amp; more" in doc
    assert "12.5000" in doc


def test_report_with_nothing_to_plot(tmp_path):
    doc = write_html_report({}, tmp_path / "empty.html").read_text()
    assert "<img" not in doc and "<h1>lt4rec run</h1>" in doc
