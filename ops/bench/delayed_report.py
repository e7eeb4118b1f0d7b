"""Tables of ``ops/bench/delayed_feedback.py``: seed means, paired differences, targets.

Seeds differ in their data (data seed = model seed), so the spread of a method's AUC over
seeds is mostly the data's; the **paired** table (each method minus Vanilla on the same
seed) is the one that says whether a method is better.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TASKS = ("cvr", "ctcvr", "ctr")
MIN_GAP = 0.001  # RI-AUC is a ratio: below this Oracle - Vanilla AUC gap it is noise


def ri_auc(m: dict[str, float], van: dict[str, float], ora: dict[str, float], t: str) -> float:
    """(AUC - AUC_vanilla) / (AUC_oracle - AUC_vanilla) of task ``t``; nan when the Oracle
    is not at least :data:`MIN_GAP` above Vanilla (the ratio would be noise)."""
    gap = ora[f"{t}_auc"] - van[f"{t}_auc"]
    return (m[f"{t}_auc"] - van[f"{t}_auc"]) / gap if gap >= MIN_GAP else float("nan")


def _mean_std(v: list[float]) -> tuple[float, float]:
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def aggregate(runs: list[dict[str, Any]], methods: list[str], kind: str) -> dict[str, Any]:
    """Mean / std over seeds of every metric (``kind``: weighted or pooled); RI-AUC of the
    seed means (a ratio of small differences is too noisy to average per seed)."""
    out: dict[str, Any] = {}
    for m in methods:
        vals: dict[str, list[float]] = {}
        for r in runs:
            for k, v in r["methods"][m][kind].items():
                vals.setdefault(k, []).append(v)
        out[m] = {k: _mean_std(v) for k, v in vals.items()}
    if "vanilla" in out and "oracle" in out:
        mean = {m: {k: v[0] for k, v in a.items()} for m, a in out.items()}
        for m in out:
            for t in TASKS:
                ri = ri_auc(mean[m], mean["vanilla"], mean["oracle"], t)
                out[m][f"{t}_ri_auc"] = (ri, 0.0)
    return out


def paired(runs: list[dict[str, Any]], methods: list[str], kind: str) -> dict[str, Any]:
    """Per method: mean / std over seeds of (method - Vanilla) AUC and NLL, and on how many
    seeds the method was better (higher AUC, lower NLL)."""
    out: dict[str, Any] = {}
    for m in methods:
        if m == "vanilla":
            continue
        row = {}
        for t in TASKS:
            for k, better in (("auc", 1.0), ("nll", -1.0)):
                d = [r["methods"][m][kind][f"{t}_{k}"] - r["methods"]["vanilla"][kind][f"{t}_{k}"]
                     for r in runs]  # fmt: skip
                row[f"{t}_{k}"] = (*_mean_std(d), sum(better * x > 0 for x in d), len(d))
        out[m] = row
    return out


def summarize(
    runs: list[dict[str, Any]], methods: list[str], args: dict[str, Any], cmd: str
) -> dict[str, Any]:
    out: dict[str, Any] = {"command": cmd, "args": args, "runs": runs}
    for kind in ("weighted", "pooled"):
        out[kind] = aggregate(runs, methods, kind)
        if "vanilla" in methods:
            out[f"paired_{kind}"] = paired(runs, methods, kind)
    return out


def table(agg: dict[str, Any], title: str) -> str:
    cols = [(t, m) for t in TASKS for m in ("auc", "pr_auc", "nll", "ri_auc")]
    head = "| method | " + " | ".join(f"{t.upper()} {m.replace('_', '-').upper()}"
                                      for t, m in cols) + " |"  # fmt: skip
    lines = [f"**{title}**", "", head, "|" + "---|" * (len(cols) + 1)]
    for m, v in agg.items():
        cells = []
        for t, k in cols:
            mean, std = v.get(f"{t}_{k}", (float("nan"), 0.0))
            cells.append(f"{mean:.3f}" if k == "ri_auc" else f"{mean:.4f} ± {std:.4f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_table(pair: dict[str, Any], title: str) -> str:
    cols = [(t, k) for t in TASKS for k in ("auc", "nll")]
    head = "| method | " + " | ".join(f"{t.upper()} Δ{k.upper()}" for t, k in cols) + " |"
    lines = [f"**{title}**", "", head, "|" + "---|" * (len(cols) + 1)]
    for m, v in pair.items():
        cells = [f"{v[f'{t}_{k}'][0]:+.4f} ± {v[f'{t}_{k}'][1]:.4f} ({v[f'{t}_{k}'][2]}/"
                 f"{v[f'{t}_{k}'][3]})" for t, k in cols]  # fmt: skip
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def targets_check(agg: dict[str, Any]) -> list[str]:
    """The issue's target on the delayed task (CVR; CTCVR too): ES-DFM RI-AUC >= 0.3, and
    ES-DFM better than FNW and Vanilla on AUC and NLL (seed means)."""
    lines = []
    for m in ("es_dfm", "es_dfm_online"):
        if m not in agg or "fnw" not in agg or "vanilla" not in agg:
            continue
        for t in ("cvr", "ctcvr"):
            e, f, v = agg[m], agg["fnw"], agg["vanilla"]
            gap = agg["oracle"][f"{t}_auc"][0] - v[f"{t}_auc"][0] if "oracle" in agg else 0.0
            ri = e[f"{t}_ri_auc"][0]
            ri_text = (
                f"RI-AUC {ri:.3f} (≥ 0.3)"
                if gap >= MIN_GAP
                else f"RI-AUC undefined (Oracle − Vanilla AUC {gap:+.4f} < {MIN_GAP})"
            )
            auc_ok = e[f"{t}_auc"][0] > max(f[f"{t}_auc"][0], v[f"{t}_auc"][0])
            nll_ok = e[f"{t}_nll"][0] < min(f[f"{t}_nll"][0], v[f"{t}_nll"][0])
            ok = gap >= MIN_GAP and ri >= 0.3 and auc_ok and nll_ok
            lines.append(f"- {m} {t.upper()}: {ri_text}, AUC > FNW & Vanilla: "
                         f"{auc_ok}, NLL < FNW & Vanilla: {nll_ok} -> "
                         f"**{'met' if ok else 'NOT met'}**")  # fmt: skip
    return lines


def render(summary: dict[str, Any]) -> str:
    """The Markdown fragment for ``docs/benchmarks.md``."""
    n = len(summary["runs"])
    md = [f"`{summary['command']}`", ""]
    md.append(table(summary["weighted"], f"Hourly metrics weighted by hourly counts "
                                         f"(mean ± std over {n} seeds)"))  # fmt: skip
    if "paired_weighted" in summary:
        md.append(paired_table(summary["paired_weighted"], "Paired with Vanilla, same seed "
                               "(weighted; mean ± std, seeds where better)"))  # fmt: skip
    md.append(table(summary["pooled"], "Pooled over all evaluation hours"))
    md += ["Targets (seed means, weighted):", *targets_check(summary["weighted"])]
    return "\n".join(md) + "\n"
