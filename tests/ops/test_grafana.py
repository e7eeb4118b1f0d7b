"""ops/grafana/lt4rec.json: an importable dashboard whose every query names real metrics.

The registries are the daemons' own (``JoinerMetrics``, ``WorkerMetrics``, ``ServeMetrics``,
no port opened), so a renamed or removed metric fails here, and so does a new metric of the
joiner, worker or server that no panel shows (unless listed in ``NOT_ON_DASHBOARD``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

from lt4rec.config import MetricsConfig
from streamer.metrics import JoinerMetrics
from streamer.serve.metrics import ServeMetrics
from streamer.worker.metrics import WorkerMetrics
from tests.ops.promql import parse, sample_names

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "ops" / "grafana" / "lt4rec.json"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
# labels Prometheus adds to every scraped series (target labels)
TARGET_LABELS = {"instance", "job"}
# families exported on purpose but not charted: (family name, why). Empty today.
NOT_ON_DASHBOARD: dict[str, str] = {}


class Family:
    """One exported metric family: its sample names and the label names of its series."""

    def __init__(self, name: str, samples: set[str], labels: set[str]) -> None:
        self.name, self.samples, self.labels = name, samples, labels


def _families(owner: Any, extra_gauge_labels: frozenset[str]) -> Iterator[Family]:
    # label names are not in the public collect() output of a family without children yet,
    # so they come from the metric objects the daemon's metrics class holds
    wrappers = {w._name: w for w in vars(owner).values() if isinstance(w, MetricWrapperBase)}
    collected = list(owner.registry.collect())
    assert {f.name for f in collected} == set(wrappers), "a metric not held as an attribute"
    for fam in collected:
        names = sample_names(fam)
        assert {s.name for s in fam.samples} <= names, fam.name  # our suffixes = the library's
        labels = set(wrappers[fam.name]._labelnames) | TARGET_LABELS
        if fam.type == "gauge":
            labels |= extra_gauge_labels
        yield Family(fam.name, names, labels)


@pytest.fixture(scope="module")
def exported() -> dict[str, Family]:
    """Sample name -> its family, over the joiner, worker and server registries."""
    owners = [
        (JoinerMetrics(MetricsConfig()), frozenset()),
        (WorkerMetrics(MetricsConfig()), frozenset()),
        # with --workers N the server's gauges are multiprocess "liveall": one series per pid
        (ServeMetrics(), frozenset({"pid"})),
    ]
    out: dict[str, Family] = {}
    for owner, extra in owners:
        for fam in _families(owner, extra):
            for sample in fam.samples:
                assert sample not in out, f"{sample} exported twice"
                out[sample] = fam
    return out


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])  # the panels of a collapsed row


def _queries(dash: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(where, expr, legendFormat) of every panel target and every query variable."""
    for p in _panels(dash):
        for t in p.get("targets", []):
            yield f"panel {p['id']} {p['title']!r}", t["expr"], t.get("legendFormat", "")
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            # Grafana's label_values(metric, label) asks the same of the metric as this does
            query = re.sub(r"^label_values\((.+),\s*(\w+)\)$", r"group by (\2) (\1)",
                           v["query"]["query"].strip())  # fmt: skip
            yield f"variable {v['name']}", query, ""


def problems(expr: str, exported: dict[str, Family], legend: str = "") -> list[str]:
    """Why ``expr`` would chart nothing: unknown metrics or labels (empty = fine)."""
    out: list[str] = []
    parsed = parse(expr)
    if not parsed.metrics:
        out.append("no metric")
    known: set[str] = set()
    for name in sorted(parsed.metrics):
        fam = exported.get(name)
        if fam is None:
            out.append(f"unknown metric {name}")
            continue
        labels = fam.labels | ({"le"} if name.endswith("_bucket") else set())
        known |= labels
        for label in sorted(parsed.selector_labels.get(name, set()) - labels):
            out.append(f"{name} has no label {label}")
    for label in sorted(parsed.grouping_labels - known):
        out.append(f"no metric of the expression has label {label}")
    for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend):
        if label not in known:
            out.append(f"legend names label {label}, no metric has it")
    return out


def test_dashboard_structure(dashboard: dict[str, Any]) -> None:
    assert dashboard["title"] and dashboard["uid"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["id"] is None  # an exported dashboard: Grafana assigns the id on import
    inputs = {i["name"]: i for i in dashboard["__inputs"]}
    assert inputs["DS_PROMETHEUS"]["pluginId"] == "prometheus"
    panels = list(_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    charts = [p for p in panels if p["type"] != "row"]
    assert len(charts) >= 30
    cells: dict[tuple[int, int], int] = {}
    for p in charts:
        assert p["title"], p["id"]
        assert p["datasource"] == DATASOURCE, p["title"]
        targets = p["targets"]
        assert targets, f"panel {p['title']!r} has no targets"
        assert len({t["refId"] for t in targets}) == len(targets), p["title"]
        for t in targets:
            assert t["datasource"] == DATASOURCE and t["expr"].strip(), p["title"]
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panels {cells[(x, y)]} and {p['id']} overlap"
                cells[(x, y)] = p["id"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for where, expr, _ in _queries(dashboard):
        for var in re.findall(r"\$\{?(\w+)\}?", expr):
            assert var.startswith("__") or var in variables, f"{where}: ${var} undefined"


def test_every_expression_names_exported_metrics(
    dashboard: dict[str, Any], exported: dict[str, Family]
) -> None:
    bad = [
        f"{where}: {why} in {expr!r}"
        for where, expr, legend in _queries(dashboard)
        for why in problems(expr, exported, legend)
    ]
    assert not bad, "\n".join(bad)


def test_every_exported_family_is_on_the_dashboard(
    dashboard: dict[str, Any], exported: dict[str, Family]
) -> None:
    used = {fam.name for _, expr, _ in _queries(dashboard)
            for m in parse(expr).metrics if (fam := exported.get(m))}  # fmt: skip
    families = {fam.name for fam in exported.values()}
    assert set(NOT_ON_DASHBOARD) <= families, "allowlist names a metric that is gone"
    missing = sorted(families - used - set(NOT_ON_DASHBOARD))
    assert not missing, f"exported but on no panel: {missing}"
    # the check sees the three daemons (a registry that silently exported nothing would pass)
    for prefix in ("lt4rec_joiner_", "lt4rec_worker_", "lt4rec_serve_"):
        assert sum(f.startswith(prefix) for f in families) >= 8, prefix


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('sum(rate(lt4rec_worker_steps_total{instance=~"$worker"}[$__rate_interval]))', []),
        ("sum(rate(lt4rec_worker_steps[5m]))", ["unknown metric lt4rec_worker_steps"]),
        ("lt4rec_worker_rolling_auc_total", ["unknown metric lt4rec_worker_rolling_auc_total"]),
        ("lt4rc_worker_version + 1", ["unknown metric lt4rc_worker_version"]),
        ('lt4rec_worker_rolling_auc{tsk="ctr"}', ["lt4rec_worker_rolling_auc has no label tsk"]),
        ("sum by (reason) (lt4rec_worker_version)",
         ["no metric of the expression has label reason"]),
        ("histogram_quantile(0.99, sum by (le) (rate(lt4rec_serve_predict_seconds_bucket[1m])))",
         []),
        ("sum by (le) (lt4rec_serve_predict_seconds_sum)",
         ["no metric of the expression has label le"]),
        ("time() - max(lt4rec_serve_model_published_timestamp_seconds)", []),
        ("1e3 * 2", ["no metric"]),
    ],
)  # fmt: skip
def test_problems_finds_what_is_wrong(
    expr: str, expected: list[str], exported: dict[str, Family]
) -> None:
    assert problems(expr, exported) == expected
