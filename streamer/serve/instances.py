"""``/predict`` request bodies -> validated feature columns -> the model's input tensors.

Rules (each broken rule is a :class:`RequestError` with a 4xx status and a reason naming
the instance and the feature):

* the body is JSON (``orjson``: NaN / Infinity literals, numbers overflowing to infinity and
  nesting deeper than 1024 are refused by the parser) of the form ``{"instances": [...]}``;
* at most ``max_instances`` instances (413), each a JSON object of ``feature: value``;
* sparse (categorical) feature: string (at most ``max_string_bytes``), integer, or finite
  number; multi-valued: a list of at most ``max_list_len`` strings / integers; dense: a
  finite number; ``null`` or absence = missing (hashed to the padding id / the training
  mean, as in training). Booleans, objects and nested lists are refused (422);
* features the model does not know are ignored or refused (422) per ``unknown_features``.

Encoding gives exactly the ids and values :func:`lt4rec.data.encode_table` gives for the
same data (tested): integers and integral floats hash as their decimal string, other floats
as Arrow's string cast, dense values are standardised by the checkpoint's normalizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import torch

from lt4rec.config import ServeConfig
from lt4rec.data.batch import Batch, FieldSchema
from lt4rec.data.hashing import BucketCache
from lt4rec.data.normalizer import Normalizer
from lt4rec.data.spec import FeatureSpec

INT_LIMIT = 2**63  # JSON integers outside int64 are refused
SHOWN_UNKNOWN = 5  # unknown feature names listed in a refusal
SPARSE, DENSE, MULTI = 0, 1, 2


class RequestError(ValueError):
    """A request the server refuses: HTTP ``status`` (4xx, or 503) and a metric ``kind``."""

    def __init__(self, status: int, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.kind = kind
        self.reason = reason


def parse_instances(body: bytes, max_instances: int) -> list[Any]:
    """The ``instances`` list of a JSON body (shape and count checked, items not yet)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, "bad_json", f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or "instances" not in data:
        raise RequestError(400, "bad_shape", 'body must be a JSON object {"instances": [...]}')
    instances = data["instances"]
    if not isinstance(instances, list):
        raise RequestError(400, "bad_shape", '"instances" must be a list of objects')
    if not instances:
        raise RequestError(400, "bad_shape", '"instances" is empty')
    if len(instances) > max_instances:
        raise RequestError(
            413, "too_many_instances", f"{len(instances)} instances, at most {max_instances}"
        )
    return instances


@dataclass
class Columns:
    """Validated raw features of N instances (strings are the hashing's input form)."""

    n: int
    sparse: list[list[str | None]]  # [n_sparse][N]
    multi: list[list[list[str] | None]]  # [n_multi][N]
    dense: np.ndarray  # [N, n_dense] float64, NaN = missing


_TYPE_NAMES: dict[type, str] = {dict: "object", list: "list", str: "string"}


def _type_name(v: Any) -> str:
    return "null" if v is None else _TYPE_NAMES.get(type(v), type(v).__name__)


class InstanceEncoder:
    """Validates instances against one model's feature spec and encodes them to a Batch."""

    def __init__(
        self, spec: FeatureSpec, schema: FieldSchema, normalizer: Normalizer, cfg: ServeConfig
    ) -> None:
        self.spec = spec
        self.schema = schema
        self.normalizer = normalizer
        self.cfg = cfg
        self.refuse_unknown = cfg.unknown_features == "refuse"
        self.known = set(spec.feature_columns)
        self.role_of: dict[str, tuple[int, int]] = {}  # feature -> (group, index in it)
        for group, names in ((SPARSE, spec.sparse), (DENSE, spec.dense), (MULTI, spec.multi)):
            self.role_of.update({name: (group, j) for j, name in enumerate(names)})
        self.caches = {
            name: BucketCache(name, schema.hash_buckets, cfg.hash_cache_size)
            for name in (*spec.sparse, *spec.multi)
        }

    # ---- validation --------------------------------------------------------------------
    def validate(self, instances: list[Any]) -> Columns:
        """Check every instance (see the module docstring); raises :class:`RequestError`.

        The common cases (short strings, finite floats, ints) are checked inline: this loop
        runs once per value of every request.
        """
        n = len(instances)
        sparse: list[list[str | None]] = [[None] * n for _ in self.spec.sparse]
        multi: list[list[list[str] | None]] = [[None] * n for _ in self.spec.multi]
        n_dense = len(self.spec.dense)
        dense_rows: list[list[float]] = []
        floats: list[tuple[list[Any], int, float]] = []  # non-integral floats, cast together
        role_of = self.role_of
        short = self.cfg.max_string_bytes // 4  # any string this short is within the limit
        max_list = self.cfg.max_list_len
        nan = math.nan
        for i, inst in enumerate(instances):
            if type(inst) is not dict:
                raise RequestError(
                    400, "bad_shape", f"instances[{i}] must be an object, got {_type_name(inst)}"
                )
            row = [nan] * n_dense
            for name, value in inst.items():
                role = role_of.get(name)
                if role is None:
                    if self.refuse_unknown:
                        self._refuse_unknown(i, inst)
                    continue
                if value is None:
                    continue
                group, j = role
                if group == SPARSE:
                    if type(value) is str and len(value) <= short:
                        sparse[j][i] = value
                    elif type(value) is int and -INT_LIMIT <= value < INT_LIMIT:
                        sparse[j][i] = str(value)
                    else:
                        sparse[j][i] = self._category(value, i, name, floats, sparse[j])
                elif group == DENSE:
                    if type(value) is float and value - value == 0.0:  # finite
                        row[j] = value
                    elif type(value) is int and -INT_LIMIT <= value < INT_LIMIT:
                        row[j] = float(value)
                    else:
                        row[j] = self._number(value, i, name)
                elif (
                    type(value) is list and len(value) <= max_list
                    and all(type(x) is str and len(x) <= short for x in value)
                ):  # fmt: skip
                    multi[j][i] = value
                else:
                    multi[j][i] = self._list(value, i, name, floats)
            dense_rows.append(row)
        if floats:
            cast = pc.cast(pa.array([f for _, _, f in floats], pa.float64()), pa.string())
            for (target, pos, _), text in zip(floats, cast.to_pylist(), strict=True):
                target[pos] = text
        dense = np.array(dense_rows, dtype=np.float64).reshape(n, n_dense)
        return Columns(n, sparse, multi, dense)

    def _refuse_unknown(self, i: int, inst: dict[str, Any]) -> None:
        unknown = [k for k in inst if k not in self.known]
        shown = ", ".join(map(repr, unknown[:SHOWN_UNKNOWN]))
        more = f" and {len(unknown) - SHOWN_UNKNOWN} more" if len(unknown) > SHOWN_UNKNOWN else ""
        raise RequestError(
            422, "unknown_feature", f"instances[{i}]: unknown feature(s) {shown}{more}"
        )

    def _category(
        self, v: Any, i: int, name: str, floats: list[tuple[list[Any], int, float]],
        target: list[Any], pos: int | None = None,
    ) -> str | None:  # fmt: skip
        if isinstance(v, str):
            limit = self.cfg.max_string_bytes
            if len(v) > limit or (not v.isascii() and len(v.encode()) > limit):
                raise RequestError(
                    422, "too_long", f"instances[{i}].{name}: string longer than "
                    f"{self.cfg.max_string_bytes} bytes",
                )  # fmt: skip
            return v
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise RequestError(
                422, "bad_type", f"instances[{i}].{name}: expected a string or a number, "
                f"got {_type_name(v)}",
            )  # fmt: skip
        if isinstance(v, int):
            if not -INT_LIMIT <= v < INT_LIMIT:
                raise RequestError(422, "bad_type", f"instances[{i}].{name}: integer out of range")
            return str(v)
        if not math.isfinite(v):
            raise RequestError(422, "non_finite", f"instances[{i}].{name}: {v} is not finite")
        if v.is_integer() and abs(v) < INT_LIMIT:
            return str(int(v))
        floats.append((target, i if pos is None else pos, v))  # filled in by validate()
        return None

    def _number(self, v: Any, i: int, name: str) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise RequestError(
                422, "bad_type", f"instances[{i}].{name}: expected a number, got {_type_name(v)}"
            )
        try:
            f = float(v)
        except OverflowError:
            f = math.inf
        if not math.isfinite(f):
            raise RequestError(422, "non_finite", f"instances[{i}].{name}: {v} is not finite")
        return f

    def _list(
        self, v: Any, i: int, name: str, floats: list[tuple[list[Any], int, float]]
    ) -> list[str]:
        if not isinstance(v, list):
            raise RequestError(
                422, "bad_type", f"instances[{i}].{name}: expected a list, got {_type_name(v)}"
            )
        if len(v) > self.cfg.max_list_len:
            raise RequestError(
                422, "too_long", f"instances[{i}].{name}: list longer than {self.cfg.max_list_len}"
            )
        out: list[Any] = [None] * len(v)
        for k, item in enumerate(v):
            if item is None:
                raise RequestError(422, "bad_type", f"instances[{i}].{name}[{k}]: null in a list")
            out[k] = self._category(item, i, f"{name}[{k}]", floats, out, k)
        return out

    # ---- encoding ----------------------------------------------------------------------
    def encode(self, cols: Columns) -> Batch:
        """Tensors of the model's input (labels are zeros: unused at inference)."""
        s, n = self.schema, cols.n
        sparse = np.zeros((n, s.n_sparse), dtype=np.int64)  # [N, n_sparse]
        for j, name in enumerate(s.sparse):
            sparse[:, j] = self.caches[name].ids(cols.sparse[j])
        multi = np.zeros((n, s.n_multi, s.multi_max_len), dtype=np.int64)  # [N, n_multi, L]
        for j, name in enumerate(s.multi):
            rows: list[int] = []
            pos: list[int] = []
            values: list[str | None] = []
            for r, lst in enumerate(cols.multi[j]):
                if lst:
                    kept = lst[: s.multi_max_len]
                    rows.extend([r] * len(kept))
                    pos.extend(range(len(kept)))
                    values.extend(kept)
            if values:
                multi[rows, j, pos] = self.caches[name].ids(values)
        dense = self.normalizer.apply(self.spec.dense, cols.dense)  # [N, n_dense] float32
        zeros = torch.zeros(n)
        return Batch(
            sparse=torch.from_numpy(sparse),
            multi=torch.from_numpy(multi),
            dense=torch.from_numpy(dense),
            click=zeros,
            conversion=zeros,
        )
