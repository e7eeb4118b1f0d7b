"""Validated examples -> the model's tensors, with the training data's encoding.

The rows become one Arrow table with the spec's columns and go through
:func:`lt4rec.data.encode.encode_table` with the checkpoint's normalizer and field schema, so
an online example is encoded exactly like the same row of a Parquet file (hashing works on
each value's string form: ``5`` and ``"5"`` agree; dense values are standardised with the
training statistics). Column types are chosen per batch from the values: all strings, all
integers or all numbers keep Arrow's own type (the offline path), a mix of strings and numbers
becomes strings (how the offline hashing treats integers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import torch

from lt4rec.config import DataConfig
from lt4rec.data.batch import Batch, FieldSchema
from lt4rec.data.encode import encode_table
from lt4rec.data.normalizer import Normalizer
from lt4rec.data.spec import DataError, FeatureSpec
from lt4rec.train.delayed import StreamMeta
from streamer.events import InvalidEvent
from streamer.worker.batching import Cut, dead_letter
from streamer.worker.examples import Example, SpecColumns

_LIST = pa.list_(pa.string())


def _as_text(v: Any) -> Any:
    if v is None or type(v) is str:
        return v
    if type(v) is float and v.is_integer():
        return str(int(v))
    return str(v)


def _sparse(values: list[Any]) -> pa.Array:
    types = {type(v) for v in values} - {type(None)}
    if types <= {str}:
        return pa.array(values, pa.string())
    if types <= {int}:
        return pa.array(values, pa.int64())
    if types <= {int, float}:
        return pa.array(values, pa.float64())
    return pa.array([_as_text(v) for v in values], pa.string())


def _array(group: str, values: list[Any]) -> pa.Array:
    if group == "sparse":
        return _sparse(values)
    if group == "multi":
        return pa.array(values, _LIST)
    if group == "dense":
        return pa.array(values, pa.float64())
    return pa.array(values, pa.int64())  # labels


class ExampleEncoder:
    """Encodes lists of :class:`Example` for one model (spec + normalizer + field schema)."""

    def __init__(self, spec: FeatureSpec, normalizer: Normalizer, schema: FieldSchema) -> None:
        self.spec = spec
        self.normalizer = normalizer
        self.columns = SpecColumns.of(spec)
        self.click_index = self.columns.names.index(spec.click)  # in Example.values
        self.data_cfg = DataConfig(
            hash_buckets=schema.hash_buckets, multi_max_len=schema.multi_max_len
        )

    def table(self, examples: Sequence[Example]) -> pa.Table:
        """The spec's columns of ``examples`` as an Arrow table (one row per example)."""
        n = len(self.columns.names)
        cols = list(zip(*(e.values for e in examples), strict=True)) if examples else [()] * n
        try:
            arrays = [_array(g, list(c)) for g, c in zip(self.columns.groups, cols, strict=True)]
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
            raise DataError(f"examples: {exc}") from exc
        return pa.Table.from_arrays(arrays, names=list(self.columns.names))

    def encode(self, examples: Sequence[Example]) -> tuple[Batch, StreamMeta]:
        """``(Batch, StreamMeta)`` of ``examples``, rows in the given order."""
        ds = encode_table(
            self.table(examples), self.spec, self.data_cfg, self.normalizer, source="examples"
        )
        batch = Batch(ds.sparse, ds.multi, ds.dense, ds.click, ds.conversion, ds.user)
        ts = torch.tensor([e.ts for e in examples], dtype=torch.float64)
        label_ts = torch.tensor([e.label_ts for e in examples], dtype=torch.float64)
        meta = StreamMeta(
            kind=torch.tensor([e.kind for e in examples], dtype=torch.int64),
            elapsed_s=((label_ts - ts) / 1000.0).to(torch.float32),
        )
        return batch, meta

    def encode_valid(
        self, examples: Sequence[Example]
    ) -> tuple[Batch | None, StreamMeta | None, list[Example], list[tuple[Example, str]]]:
        """:meth:`encode`, setting aside examples the encoder refuses (each with the reason).

        Validation already rejects what the spec cannot encode, so the fallback (encoding
        the rows one by one to find the culprits) is a safety net, not a hot path.
        """
        if not examples:
            return None, None, [], []
        try:
            batch, meta = self.encode(examples)
            return batch, meta, list(examples), []
        except DataError:
            pass
        kept: list[Example] = []
        bad: list[tuple[Example, str]] = []
        for e in examples:
            try:
                self.encode([e])
                kept.append(e)
            except DataError as exc:
                bad.append((e, str(exc)))
        if not kept:
            return None, None, [], bad
        batch, meta = self.encode(kept)
        return batch, meta, kept, bad


def encode_cut(cut: Cut, encoder: ExampleEncoder, topic: str) -> None:
    """Encode ``cut`` with ``encoder`` (in place): examples the encoder refuses become dead
    letters with reason ``bad_feature``; ``cut.encoded`` remembers which encoder was used
    (a holder swapped in later re-encodes with its own)."""
    batch, meta, kept, bad = encoder.encode_valid(cut.examples)
    for ex, why in bad:
        exc = InvalidEvent("bad_feature", why)
        dead_letter(cut, topic, ex.partition, ex.offset, ex.key, ex.raw, exc)
    cut.examples = kept
    cut.encoded = (encoder, batch, meta)
