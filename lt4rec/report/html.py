"""The main job's HTML report: one self-contained page (plots embedded as PNG data URIs).

Input is the run summary (plain JSON-able data), so the report can be regenerated from
``summary.json`` alone:

* ``auc_series``: ``[{"t": seconds, "version": v, "ctr_auc": x, "cvr_auc": y}, ...]`` — the
  worker's rolling (progressive-validation) AUCs over time, coloured by model version;
* ``versions``: ``[{"version", "kind", "status", "density_ctr", "density_cvr",
  "shared_fraction"}, ...]`` — mask density / overlap per registered version;
* ``delayed_feedback``: ``{method: {"auc": ..., "nll": ..., "ri_auc": ...}}`` (optional);
* ``sections``: ``{title: {key: value}}`` — tables (offline fit, swaps, freshness, ...).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def plot_auc_series(series: Sequence[Mapping[str, Any]]) -> str | None:
    """Rolling AUC per task over time; markers change colour with the model version."""
    if not series:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    versions = sorted({int(p["version"]) for p in series if p.get("version") is not None})
    cmap = plt.get_cmap("tab10")
    for ax, task in zip(axes, ("ctr", "cvr"), strict=True):
        key = f"{task}_auc"
        pts = [p for p in series if p.get(key) == p.get(key) and p.get(key) is not None]
        ax.plot([p["t"] for p in pts], [p[key] for p in pts], color="0.7", lw=1)
        for i, v in enumerate(versions):
            sel = [p for p in pts if p.get("version") == v]
            ax.scatter([p["t"] for p in sel], [p[key] for p in sel], s=12, color=cmap(i % 10),
                       label=f"v{v}")  # fmt: skip
        ax.set_title(f"rolling {task.upper()} AUC (progressive validation)")
        ax.set_xlabel("seconds since start")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7, title="version")
    return _png(fig)


def plot_versions(versions: Sequence[Mapping[str, Any]]) -> str | None:
    """MLP density per task and shared fraction per registered version."""
    rows = [v for v in versions if v.get("density_ctr") is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(rows) + 2), 3.6))
    xs = list(range(len(rows)))
    width = 0.27
    for k, (key, label) in enumerate(
        (("density_ctr", "density CTR"), ("density_cvr", "density CVR"),
         ("shared_fraction", "shared fraction"))
    ):  # fmt: skip
        ax.bar([x + (k - 1) * width for x in xs], [float(r.get(key) or 0) for r in rows], width,
               label=label)  # fmt: skip
    ax.set_xticks(xs, [f"v{r['version']}\n{r.get('kind', '')}" for r in rows], fontsize=8)
    ax.set_ylabel("fraction of MLP weights")
    ax.set_title("mask density and overlap per version")
    ax.legend(fontsize=8)
    return _png(fig)


def plot_delayed_feedback(results: Mapping[str, Mapping[str, float]]) -> str | None:
    """AUC and NLL per delayed-feedback method (e.g. ES-DFM vs Vanilla)."""
    if not results:
        return None
    names = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key in zip(axes, ("auc", "nll"), strict=True):
        ax.bar(names, [float(results[n].get(key, float("nan"))) for n in names])
        ax.set_title(key.upper())
        vals = [float(results[n].get(key, 0) or 0) for n in names]
        if vals:
            lo, hi = min(vals), max(vals)
            pad = (hi - lo) * 0.5 or 0.01
            ax.set_ylim(lo - pad, hi + pad)
        plt.setp(ax.get_xticklabels(), rotation=20, ha="right", fontsize=8)
    return _png(fig)


def _table(data: Mapping[str, Any]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in data.items()
    )
    return f"<table>{cells}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def write_html_report(
    summary: Mapping[str, Any], path: str | Path, title: str = "lt4rec run"
) -> Path:
    """Render ``summary`` (see module docstring) into one HTML file at ``path``."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    figures = (
        ("Model quality over time", plot_auc_series(summary.get("auc_series") or [])),
        ("Versions: tickets and sharing", plot_versions(summary.get("versions") or [])),
        ("Delayed feedback", plot_delayed_feedback(summary.get("delayed_feedback") or {})),
    )
    for name, uri in figures:
        if uri is not None:
            parts.append(f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" src="{uri}">')
    for name, table in (summary.get("sections") or {}).items():
        parts.append(f"<h2>{html.escape(str(name))}</h2>{_table(table)}")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;"
        "padding:2px 8px;text-align:left;font-size:13px}th{background:#f4f4f4}"
    )
    doc = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc, encoding="utf-8")
    return out
