"""Parquet rows as mini-batches in bounded memory: the archive window of the re-pruning job.

:class:`ParquetStream` is a :class:`~lt4rec.train.steps.BatchSource` over a set of Parquet
files (e.g. ``archive/dt=*/part-*.parquet``) and an optional row filter (a pyarrow compute
expression, e.g. a time range). It never holds the whole window: rows are read in record
batches of ``read_rows``, encoded chunk by chunk, and shuffled through a buffer of
``shuffle_rows`` rows (files in random order, rows in random order within the buffer), so
memory depends on the buffer size, not on the window length. Files written before a feature
appeared read that column as null (one unified schema).

:func:`fit_normalizer_stream` computes the dense-feature statistics in one streaming pass,
equal to :meth:`Normalizer.fit` on the concatenated rows (population std).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import torch

from lt4rec.config.data import DataConfig
from lt4rec.data.batch import Batch
from lt4rec.data.dataset import EncodedDataset
from lt4rec.data.encode import dense_matrix, encode_table
from lt4rec.data.normalizer import Normalizer
from lt4rec.data.spec import DataError, FeatureSpec


class ParquetStream:
    """Encoded mini-batches of the rows of ``files`` that match ``row_filter``."""

    def __init__(
        self,
        files: Sequence[str | Path],
        spec: FeatureSpec,
        cfg: DataConfig,
        normalizer: Normalizer | None,
        row_filter: ds.Expression | None = None,
        *,
        shuffle_rows: int = 65_536,
        read_rows: int = 16_384,
        extra_columns: Sequence[str] = (),
    ) -> None:
        if not files:
            raise DataError("no Parquet files in the window")
        if shuffle_rows < 1 or read_rows < 1:
            raise ValueError("shuffle_rows and read_rows must be >= 1")
        self.files = [str(f) for f in files]
        self.spec, self.cfg, self.normalizer = spec, cfg, normalizer
        self.row_filter = row_filter
        self.shuffle_rows, self.read_rows = shuffle_rows, read_rows
        try:
            schemas = [ds.dataset(f, format="parquet").schema for f in self.files]
            self.schema = pa.unify_schemas(schemas, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
            raise DataError(f"archive files have incompatible schemas: {exc}") from exc
        spec.check_table(self.schema, "archive window")
        self.columns = list(dict.fromkeys([*spec.required_columns, *extra_columns]))
        self._rows = self._dataset(self.files).count_rows(filter=row_filter)

    def __len__(self) -> int:
        return self._rows

    def _dataset(self, files: Sequence[str]) -> ds.Dataset:
        return ds.dataset(list(files), schema=self.schema, format="parquet")

    def tables(
        self, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[pa.Table]:
        """Raw record batches (as tables) of the matching rows, files in order or shuffled."""
        files = self.files
        if shuffle:
            order = torch.randperm(len(files), generator=generator).tolist()
            files = [files[i] for i in order]
        scan = self._dataset(files).to_batches(
            columns=self.columns, filter=self.row_filter, batch_size=self.read_rows
        )
        for rb in scan:
            if rb.num_rows:
                yield pa.Table.from_batches([rb])

    def encode(self, table: pa.Table) -> EncodedDataset:
        if self.normalizer is None:
            raise ValueError("ParquetStream: fit a normalizer first (fit_normalizer_stream)")
        return encode_table(table, self.spec, self.cfg, self.normalizer, source="archive window")

    def batches(
        self, batch_size: int, shuffle: bool, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        """Every matching row once, in batches of ``batch_size`` (the last may be smaller)."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        buffer: list[pa.Table] = []
        held = 0
        carry: EncodedDataset | None = None
        for table in self.tables(shuffle, generator):
            buffer.append(table)
            held += table.num_rows
            if held >= self.shuffle_rows:
                carry = yield from self._emit(buffer, carry, batch_size, shuffle, generator)
                buffer, held = [], 0
        if buffer:
            carry = yield from self._emit(buffer, carry, batch_size, shuffle, generator)
        if carry is not None and len(carry):
            yield carry.batch(torch.arange(len(carry)))

    def _emit(
        self,
        buffer: list[pa.Table],
        carry: EncodedDataset | None,
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator | None,
    ) -> Generator[Batch, None, EncodedDataset | None]:
        """Full batches of carry + buffer; returns the rows left over (< batch_size)."""
        data = self.encode(pa.concat_tables(buffer, promote_options="permissive"))
        if carry is not None and len(carry):
            data = EncodedDataset.concat([carry, data])
        n = len(data)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        full = n - n % batch_size
        for start in range(0, full, batch_size):
            yield data.batch(order[start : start + batch_size])
        return data.subset(order[full:]) if full < n else None

    def materialize(self) -> EncodedDataset:
        """All matching rows in memory, in file order (small splits: valid / held-out)."""
        parts = [self.encode(t) for t in self.tables()]
        if not parts:
            raise DataError("archive window: no rows match")
        return EncodedDataset.concat(parts)


def fit_normalizer_stream(stream: ParquetStream) -> Normalizer:
    """Mean / std of the dense features over every row of ``stream`` (one pass)."""
    fields = stream.spec.dense
    count = np.zeros(len(fields))
    total = np.zeros(len(fields))
    squares = np.zeros(len(fields))
    shift: np.ndarray | None = None  # first finite value per field: a stable shifted sum
    for table in stream.tables():
        raw = dense_matrix(table, fields)  # [n, n_dense] float64, NaN = missing
        if shift is None:
            shift = np.array(
                [raw[np.isfinite(raw[:, j]), j][0] if np.isfinite(raw[:, j]).any() else 0.0
                 for j in range(len(fields))]
            )  # fmt: skip
        d = np.where(np.isfinite(raw), raw - shift, 0.0)
        count += np.isfinite(raw).sum(0)
        total += d.sum(0)
        squares += (d * d).sum(0)
    means, stds = [], []
    for j in range(len(fields)):
        if count[j] == 0:
            means.append(0.0)
            stds.append(1.0)
            continue
        m = total[j] / count[j]
        var = max(squares[j] / count[j] - m * m, 0.0)
        s = float(np.sqrt(var))
        means.append(float(m + (shift[j] if shift is not None else 0.0)))
        stds.append(s if np.isfinite(s) and s > 1e-12 else 1.0)
    return Normalizer(tuple(fields), tuple(means), tuple(stds))
