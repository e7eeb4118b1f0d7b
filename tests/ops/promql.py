"""Just enough PromQL reading to check a Grafana dashboard against the exported metrics.

:func:`parse` pulls out of one expression the metric names, the label names of each metric's
selector (``m{task="ctr"}``) and the label names of grouping clauses (``sum by (task)``).
It knows the PromQL used in ``ops/grafana/lt4rec.json`` (selectors, ranges, aggregations,
functions, arithmetic); every identifier that is not a function, keyword or label is taken
for a metric name, so a misspelt metric is reported, never silently skipped.

:func:`sample_names` is what prometheus_client exposes for one metric family: a Counter
``x`` as ``x_total`` (and ``x_created``), a Histogram as ``x_bucket``/``x_sum``/``x_count``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_RANGE = re.compile(r"\[[^\]]*\]")
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENT = re.compile(r"[A-Za-z_:][\w:]*")
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_NUMBER = re.compile(r"(?<![\w:])\d+(?:\.\d*)?(?:[eE][+-]?\d+)?")
# aggregation operators and keywords that are not followed by "(" (functions always are)
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
             "and", "or", "unless", "offset", "inf", "nan"}  # fmt: skip


@dataclass
class Parsed:
    """What one PromQL expression refers to."""

    metrics: set[str] = field(default_factory=set)
    selector_labels: dict[str, set[str]] = field(default_factory=dict)  # metric -> labels
    grouping_labels: set[str] = field(default_factory=set)


def _labels(text: str) -> set[str]:
    return {name.strip() for name in text.split(",") if name.strip()}


def parse(expr: str) -> Parsed:
    """Metric names and label names that ``expr`` uses (Grafana ``$variables`` ignored)."""
    out = Parsed()
    text = _RANGE.sub(" ", _STRING.sub('""', expr))
    text = _NUMBER.sub(" ", _VARIABLE.sub(" ", text))
    for m in _SELECTOR.finditer(text):
        labels = set(_MATCHER.findall(m.group(2)))
        if m.group(1) and m.group(1) not in _KEYWORDS:
            out.selector_labels.setdefault(m.group(1), set()).update(labels)
        elif labels:  # a bare {…} selector: its labels still have to exist somewhere
            out.grouping_labels |= labels
    text = _SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", text)
    for m in _GROUPING.finditer(text):
        out.grouping_labels |= _labels(m.group(1))
    text = _GROUPING.sub(" ", text)
    for m in _IDENT.finditer(text):
        name, rest = m.group(0), text[m.end() :].lstrip()
        if rest.startswith("(") or name.lower() in _KEYWORDS:
            continue  # a function call or a keyword
        out.metrics.add(name)
    out.metrics |= set(out.selector_labels)
    return out


_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


def sample_names(family: Metric) -> set[str]:
    """The sample names prometheus_client's exposition gives the family ``family``."""
    return {family.name + suffix for suffix in _SUFFIXES[family.type]}
