"""The public Tencent Video traffic sample (real data, 4,322 impressions) as an lt4rec data set.

``<repo>/../shared/data/tencent_video_sample/sample.parquet`` (see its README) has no
impression id; :func:`split_tencent` adds ``impression_id`` (``tv-<row>``, the row number in
the source file) and splits whole requests 70/15/15 into train / valid / test by a seeded hash
of ``request_id``, so all impressions of one feed request stay in one split. Labels: ``click``
(played) and ``conversion`` (completed play, post-click); GAUC groups by ``uid``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lt4rec.data.spec import DataError, FeatureSpec

SAMPLE_ENV = "LT4REC_TENCENT_SAMPLE"
SPARSE = (
    "svid", "scp", "sicat1", "sicat2", "vid", "cp", "icat1", "icat2",
    "age", "duration", "algid", "order", "coverquality", "uid", "ugroup",
)  # fmt: skip
MULTI = ("sikeyword", "stag", "ixftag", "ikeyword", "ucat")
FRACTIONS = (0.70, 0.15, 0.15)  # train, valid, test (of requests)


def default_sample_path() -> Path:
    """``$LT4REC_TENCENT_SAMPLE``, else the sample under ``<repo>/../shared/data/``."""
    env = os.environ.get(SAMPLE_ENV)
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "data" / "tencent_video_sample" / "sample.parquet"


def tencent_spec() -> FeatureSpec:
    """Feature spec of :func:`split_tencent` output (the raw file lacks ``impression_id``)."""
    return FeatureSpec(
        sparse=SPARSE,
        multi=MULTI,
        dense=(),
        click="click",
        conversion="conversion",
        id="impression_id",
        time="request_ts_ms",
        user="uid",
    )


def _request_split(request_ids: list[str], seed: int) -> np.ndarray:
    """Split index (0 train, 1 valid, 2 test) of every row, whole requests together."""
    uniq = sorted(set(request_ids))
    key = {r: hashlib.blake2b(f"{seed}:{r}".encode(), digest_size=8).hexdigest() for r in uniq}
    order = sorted(uniq, key=lambda r: (key[r], r))  # seeded, deterministic permutation
    cut1 = round(len(order) * FRACTIONS[0])
    cut2 = cut1 + round(len(order) * FRACTIONS[1])
    part = {r: (0 if k < cut1 else 1 if k < cut2 else 2) for k, r in enumerate(order)}
    return np.array([part[r] for r in request_ids], dtype=np.int64)


def split_tencent(src: str | Path | None, out_dir: str | Path, seed: int = 0) -> dict[str, int]:
    """Write ``train/valid/test.parquet`` and ``spec.json`` into ``out_dir``; return row counts.

    ``src`` None means :func:`default_sample_path`. Rows keep their source order in each split.
    """
    path = default_sample_path() if src is None else Path(src)
    if not path.is_file():
        raise DataError(f"Tencent sample {path} does not exist (set {SAMPLE_ENV})")
    table = pq.read_table(path)
    spec = tencent_spec()
    needed = [c for c in spec.required_columns if c != spec.id] + ["request_id", spec.time]
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(map(repr, missing))}")
    if table.num_rows == 0:
        raise DataError(f"{path}: file has no rows")
    ids = pa.array([f"tv-{k:05d}" for k in range(table.num_rows)], pa.string())
    table = table.add_column(0, "impression_id", ids).replace_schema_metadata(None)
    request_ids = table.column("request_id").fill_null("").to_pylist()
    part = _request_split(request_ids, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for k, name in enumerate(("train", "valid", "test")):
        rows = table.take(pa.array(np.flatnonzero(part == k)))
        pq.write_table(rows, out / f"{name}.parquet", compression="zstd", row_group_size=65_536)
        counts[name] = rows.num_rows
    spec.save(out / "spec.json")
    (out / "split.json").write_text(
        json.dumps({"source": path.name, "seed": seed, "rows": counts}, indent=2) + "\n",
        encoding="utf-8",
    )
    return counts
