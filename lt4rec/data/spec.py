"""Feature spec: which Parquet columns are features, labels and keys.

A spec is a small JSON file written next to every data set (simulator output, Tencent split,
streamer archive)::

    {"sparse": ["user_id", "item_id", ...], "multi": ["item_tags"], "dense": ["quality"],
     "labels": {"click": "click", "conversion": "conversion"},
     "id": "impression_id", "time": "ts", "user": "user_id"}

``multi``, ``dense`` and ``user`` may be empty or absent. Validation is strict so that a typo
fails at load time with a message naming the key or column, never as a shape error deep in a
model. ``user`` (the GAUC grouping key) may also be a sparse feature; no column may belong to two
of the groups sparse / multi / dense / labels.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

_KEYS = ("sparse", "multi", "dense", "labels", "id", "time", "user")
_LABEL_KEYS = ("click", "conversion")


class SpecError(ValueError):
    """A feature spec that is malformed or does not match a data file."""


class DataError(ValueError):
    """A data file that cannot be used with its spec (missing column, no rows, bad labels)."""


def _names(data: Mapping[str, Any], key: str, required: bool) -> tuple[str, ...]:
    if key not in data or data[key] is None:
        if required:
            raise SpecError(f"feature spec: missing key {key!r}")
        return ()
    value = data[key]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"feature spec: {key!r} must be a list of column names, got {value!r}")
    if any(not v for v in value):
        raise SpecError(f"feature spec: {key!r} contains an empty column name")
    seen: set[str] = set()
    for v in value:
        if v in seen:
            raise SpecError(f"feature spec: duplicate column {v!r} in {key!r}")
        seen.add(v)
    return tuple(value)


def _name(data: Mapping[str, Any], key: str, required: bool) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise SpecError(f"feature spec: missing key {key!r}")
        return None
    if not isinstance(value, str):
        raise SpecError(f"feature spec: {key!r} must be a column name (string), got {value!r}")
    return value


@dataclass(frozen=True)
class FeatureSpec:
    """Column roles of one data set (see module docstring)."""

    sparse: tuple[str, ...]
    multi: tuple[str, ...]
    dense: tuple[str, ...]
    click: str  # label column of the CTR task
    conversion: str  # label column of the post-click CVR task
    id: str
    time: str
    user: str | None = None

    def __post_init__(self) -> None:
        # Direct construction gets the same checks as from_dict; lists become tuples.
        data = {"sparse": self.sparse, "multi": self.multi, "dense": self.dense}
        for key in data:
            object.__setattr__(self, key, _names(data, key, True))
        labels = {"click": self.click, "conversion": self.conversion}
        for key in labels:
            _name(labels, key, True)
        roles = {"id": self.id, "time": self.time, "user": self.user}
        for key in roles:
            _name(roles, key, key != "user")
        FeatureSpec._validate_groups(self)

    @staticmethod
    def _validate_groups(spec: FeatureSpec) -> None:
        if not spec.sparse and not spec.multi and not spec.dense:
            raise SpecError("feature spec: no feature columns (sparse, multi and dense are empty)")
        if spec.click == spec.conversion:
            raise SpecError(f"feature spec: labels click and conversion are both {spec.click!r}")
        owner: dict[str, str] = {}
        groups = (
            ("sparse", spec.sparse),
            ("multi", spec.multi),
            ("dense", spec.dense),
            ("labels", (spec.click, spec.conversion)),
        )
        for group, cols in groups:
            for col in cols:
                if col in owner and owner[col] != group:
                    raise SpecError(
                        f"feature spec: column {col!r} is in two groups ({owner[col]} and {group})"
                    )
                owner[col] = group
        for role in ("id", "time", "user"):
            col = getattr(spec, role)
            if col is not None and owner.get(col) == "labels":
                raise SpecError(f"feature spec: {role} column {col!r} is also a label")
        if spec.id == spec.time:
            raise SpecError(f"feature spec: id and time are both {spec.id!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Build and validate a spec from its JSON form; unknown keys are rejected."""
        if not isinstance(data, Mapping):
            raise SpecError(f"feature spec must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise SpecError(
                f"feature spec: unknown key(s) {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(_KEYS)})"
            )
        labels = data.get("labels")
        if labels is None:
            raise SpecError("feature spec: missing key 'labels'")
        if not isinstance(labels, Mapping):
            raise SpecError(f"feature spec: 'labels' must be an object, got {labels!r}")
        extra = sorted(set(labels) - set(_LABEL_KEYS))
        if extra:
            raise SpecError(f"feature spec: unknown label(s) {', '.join(map(repr, extra))}")
        click = _name(labels, "click", True)
        conversion = _name(labels, "conversion", True)
        assert click is not None and conversion is not None
        ident = _name(data, "id", True)
        time = _name(data, "time", True)
        assert ident is not None and time is not None
        return cls(
            sparse=_names(data, "sparse", True),
            multi=_names(data, "multi", False),
            dense=_names(data, "dense", False),
            click=click,
            conversion=conversion,
            id=ident,
            time=time,
            user=_name(data, "user", False),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form (round-trips through :meth:`from_dict`)."""
        out: dict[str, Any] = {
            "sparse": list(self.sparse),
            "multi": list(self.multi),
            "dense": list(self.dense),
            "labels": {"click": self.click, "conversion": self.conversion},
            "id": self.id,
            "time": self.time,
        }
        if self.user is not None:
            out["user"] = self.user
        return out

    @classmethod
    def load(cls, path: str | Path) -> FeatureSpec:
        """Read a spec JSON file; errors name the file."""
        p = Path(path)
        if not p.is_file():
            raise SpecError(f"feature spec file {p} does not exist")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SpecError(f"feature spec file {p} is not valid JSON: {exc}") from exc
        try:
            return cls.from_dict(data)
        except SpecError as exc:
            raise SpecError(f"{p}: {exc}") from exc

    def save(self, path: str | Path) -> None:
        """Write the spec as stable, pretty JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @property
    def feature_columns(self) -> tuple[str, ...]:
        return (*self.sparse, *self.multi, *self.dense)

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns an example table must have to be encoded (features, labels, user key)."""
        cols = [*self.feature_columns, self.click, self.conversion]
        if self.user is not None and self.user not in cols:
            cols.append(self.user)
        return tuple(cols)

    def check_table(self, schema: pa.Schema, source: str = "table") -> None:
        """Fail with a :class:`DataError` naming ``source`` if ``schema`` cannot be encoded."""
        names = set(schema.names)
        missing = [c for c in self.required_columns if c not in names]
        if missing:
            raise DataError(f"{source}: missing column(s) {', '.join(map(repr, missing))}")
        for col in self.multi:
            t = schema.field(col).type
            if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_null(t)):
                raise DataError(f"{source}: multi-valued column {col!r} must be a list, got {t}")
        for col in (*self.dense, self.click, self.conversion):
            t = schema.field(col).type
            if not (
                pa.types.is_integer(t)
                or pa.types.is_floating(t)
                or pa.types.is_boolean(t)
                or pa.types.is_null(t)
            ):
                raise DataError(f"{source}: column {col!r} must be numeric, got {t}")
