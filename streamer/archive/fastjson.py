"""Archive rows straight from their JSON bytes with Arrow's C++ JSON reader (the fast path).

Engine chunks carry the rows as the example JSON they were staged as; parsing them with
``pyarrow.json`` against the archive's known column types costs a fraction of ``json.loads``
plus building columns from dicts. Anything unusual — a feature not in the schema yet, a value
of another type, a lone surrogate — makes Arrow refuse, and the caller takes the dict path,
which applies :func:`streamer.archive.schema.coerce` value by value. Both paths give the same
table for the rows the fast path accepts.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.json as pj

from streamer.archive.schema import BASE_FIELDS, FEATURE_TYPES, arrow_schema


def table_from_json(
    raw: Sequence[bytes], types: dict[str, str], overflow: bool = False
) -> pa.Table | None:
    """The archive table of JSON rows ``raw``; ``None`` when Arrow cannot convert them exactly."""
    feats = pa.struct([pa.field(n, FEATURE_TYPES[t]) for n, t in types.items()])
    schema = pa.schema([*(pa.field(f.name, f.type) for f in BASE_FIELDS), ("features", feats)])
    data = b"\n".join(raw)
    opts = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    read = pj.ReadOptions(use_threads=False, block_size=max(1 << 20, len(data) + 1))
    try:
        t = pj.read_json(io.BytesIO(data), read_options=read, parse_options=opts)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if t.num_rows != len(raw) or any(t.column(f.name).null_count for f in BASE_FIELDS[:8]):
        return None  # a missing required field: let the dict path name it
    features = t.column("features").combine_chunks()
    if features.null_count:
        return None
    arrays = [t.column(f.name).combine_chunks() for f in BASE_FIELDS]
    arrays += [features.field(i) for i in range(len(types))]
    if overflow:  # every row's features have a column: no extra features
        arrays.append(pa.nulls(len(raw), pa.string()))
    return pa.Table.from_arrays(arrays, schema=arrow_schema(types, overflow))
