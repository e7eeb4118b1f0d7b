"""Operations of one SQL transaction of one partition (see :mod:`streamer.store.sql`).

Hot paths (get / put / delete / due / expire / stage) are plain SQL through the DBAPI cursor,
written once with ``?`` placeholders (``%s`` on PostgreSQL): SQLAlchemy's per-row parameter
processing would cost more than the statements themselves. The rest uses SQLAlchemy Core.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from streamer.store.base import ChunkRef, Entry, Meta, Output, OutRow, Sink, StoreTxn, iter_chunks
from streamer.store.schema import (
    SINK_CODES,
    chunks_table,
    entries_table,
    meta_table,
    outbox_table,
)

_IN_CHUNK = 900  # ids per IN (...) list: below every backend's parameter limit

E, OB, C, M = entries_table.c, outbox_table.c, chunks_table.c, meta_table.c


def _encode_headers(headers: Sequence[tuple[str, bytes]]) -> str:
    if not headers:
        return ""
    return json.dumps([[k, v.decode("latin-1")] for k, v in headers])


def _decode_headers(text: str) -> list[tuple[str, bytes]]:
    if not text:
        return []
    return [(k, v.encode("latin-1")) for k, v in json.loads(text)]


def _entry(row: Any) -> Entry:
    return Entry(row.impression_id, int(row.state), int(row.deadline), bytes(row.data))


_COLS = "impression_id, state, deadline, data"
_UPSERT = (
    'INSERT INTO joiner_entries ("partition", impression_id, state, deadline, data) '
    'VALUES (?, ?, ?, ?, ?) ON CONFLICT ("partition", impression_id) DO UPDATE SET '
    "state = excluded.state, deadline = excluded.deadline, data = excluded.data"
)
_DELETE = 'DELETE FROM joiner_entries WHERE "partition" = ? AND impression_id = ?'
_DUE = (
    f'SELECT {_COLS} FROM joiner_entries WHERE "partition" = ? AND deadline < ? '
    "ORDER BY deadline, impression_id LIMIT ?"
)
_STAGE = (
    'INSERT INTO joiner_outbox ("partition", sink, seq, "key", "value", headers, chunk) '
    "VALUES (?, ?, ?, ?, ?, ?, NULL)"
)


# PostgreSQL: one statement per batch over arrays (unnest) instead of a statement per row;
# %b sends the arrays in binary (psycopg's text quoting of bytea arrays is slow).
_PG_UPSERT = (
    'INSERT INTO joiner_entries ("partition", impression_id, state, deadline, data) '
    "SELECT %s, * FROM unnest(%b::text[], %b::smallint[], %b::bigint[], %b::bytea[]) "
    'ON CONFLICT ("partition", impression_id) DO UPDATE SET '
    "state = excluded.state, deadline = excluded.deadline, data = excluded.data"
)
_PG_DELETE = 'DELETE FROM joiner_entries WHERE "partition" = %s AND impression_id = ANY(%b)'
_PG_STAGE = (
    'INSERT INTO joiner_outbox ("partition", sink, seq, "key", "value", headers, chunk) '
    "SELECT %s, %s, *, NULL FROM unnest(%b::bigint[], %b::bytea[], %b::bytea[], %b::text[])"
)


class SqlTxn(StoreTxn):
    """Hot paths (get / put / delete / due / stage) are plain SQL through the DBAPI cursor:
    SQLAlchemy's per-row parameter processing would cost more than the statements."""

    def __init__(self, conn: Connection, partition: int, pg: bool, meta: Meta) -> None:
        self.partition = partition
        self._c = conn
        self._pg = pg
        self._meta = meta  # read with the epoch check (row locked): no second query

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self._pg else text

    def _rows(self, text: str, params: Any) -> list[Any]:
        return list(self._c.exec_driver_sql(self._sql(text), params).fetchall())

    def _many(self, text: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self._c.exec_driver_sql(self._sql(text), rows)

    def get(self, ids: Sequence[str]) -> dict[str, Entry]:
        out: dict[str, Entry] = {}
        uniq = list(dict.fromkeys(ids))
        if self._pg:
            q = f"SELECT {_COLS} FROM joiner_entries "
            q += 'WHERE "partition" = ? AND impression_id = ANY(%b)'  # binary text[]
            chunks: list[tuple[str, tuple[Any, ...]]] = [(q, (self.partition, uniq))]
        else:
            chunks = [
                (f'SELECT {_COLS} FROM joiner_entries WHERE "partition" = ? AND impression_id '
                 f"IN ({','.join('?' * len(part))})", (self.partition, *part))
                for part in iter_chunks(uniq, _IN_CHUNK)
            ]  # fmt: skip
        for q, params in chunks:
            for iid, state, deadline, data in self._rows(q, params):
                out[iid] = Entry(iid, state, deadline, bytes(data))
        return out

    def due(self, watermark: int, limit: int) -> list[Entry]:
        rows = self._rows(_DUE, (self.partition, watermark, limit))
        return [Entry(i, st, d, bytes(data)) for i, st, d, data in rows]

    def expire(self, state: int, watermark: int) -> int:
        q = 'DELETE FROM joiner_entries WHERE "partition" = ? AND deadline < ? AND state = ?'
        res = self._c.exec_driver_sql(self._sql(q), (self.partition, watermark, state))
        return int(res.rowcount or 0)

    def put(self, entries: Sequence[Entry]) -> None:
        p = self.partition
        if self._pg and entries:
            ids, states, deadlines, data = map(list, zip(*entries, strict=True))
            self._c.exec_driver_sql(_PG_UPSERT, (p, ids, states, deadlines, data))
            return
        self._many(_UPSERT, [(p, e.impression_id, e.state, e.deadline, e.data) for e in entries])

    def delete(self, ids: Sequence[str]) -> None:
        if self._pg and ids:
            self._c.exec_driver_sql(_PG_DELETE, (self.partition, list(ids)))
            return
        self._many(_DELETE, [(self.partition, i) for i in ids])

    def stage(self, sink: Sink, first_seq: int, rows: Sequence[OutRow]) -> None:
        p, code = self.partition, SINK_CODES[sink]
        if self._pg and rows:
            seqs = list(range(first_seq, first_seq + len(rows)))
            keys, values, heads = (list(c) for c in zip(*rows, strict=True))
            hdrs = [_encode_headers(h) for h in heads]
            self._c.exec_driver_sql(_PG_STAGE, (p, code, seqs, keys, values, hdrs))
            return
        self._many(_STAGE, [(p, code, first_seq + i, k, v, _encode_headers(h))
                            for i, (k, v, h) in enumerate(rows)])  # fmt: skip

    def oldest(self, state: int, limit: int) -> list[Entry]:
        q = (
            sa.select(E.impression_id, E.state, E.deadline, E.data)
            .where(E.partition == self.partition, E.state == state)
            .order_by(E.deadline, E.impression_id)
            .limit(limit)
        )
        return [_entry(r) for r in self._c.execute(q)]

    def read_meta(self) -> Meta:
        return self._meta  # this transaction's own copy (discarded on rollback)

    def write_meta(self, data: dict[str, Any]) -> None:
        self._meta = Meta(self.partition, self._meta.epoch, self._meta.owner, dict(data))
        self._c.execute(
            sa.update(meta_table)
            .where(M.partition == self.partition)
            .values(data=json.dumps(data, sort_keys=True))
        )

    def _outputs(
        self, where: str, params: tuple[Any, ...], limit: int | None = None
    ) -> list[Output]:
        q = f'SELECT seq, "key", "value", headers FROM joiner_outbox WHERE {where} ORDER BY seq'
        if limit is not None:
            q, params = q + " LIMIT ?", (*params, limit)
        return [
            Output(seq, bytes(key), bytes(value), _decode_headers(headers))
            for seq, key, value, headers in self._rows(q, params)
        ]

    def pending(self, sink: Sink, limit: int, after_seq: int = -1) -> list[Output]:
        where = '"partition" = ? AND sink = ? AND seq > ?'
        return self._outputs(where, (self.partition, SINK_CODES[sink], after_seq), limit)

    def ack(self, sink: Sink, upto_seq: int) -> int:
        if sink == "archive":
            raise ValueError("archive rows are acknowledged per chunk (drop_chunk)")
        cond = [OB.partition == self.partition, OB.sink == SINK_CODES[sink], OB.seq <= upto_seq]
        return self._c.execute(sa.delete(outbox_table).where(*cond)).rowcount or 0

    def _archive(self) -> list[Any]:
        return [OB.partition == self.partition, OB.sink == SINK_CODES["archive"]]

    def seal(self, min_rows: int, max_rows: int) -> ChunkRef | None:
        q = (
            sa.select(OB.seq)
            .where(*self._archive(), OB.chunk.is_(None))
            .order_by(OB.seq)
            .limit(max_rows)
        )
        seqs = [int(r.seq) for r in self._c.execute(q)]
        if not seqs or len(seqs) < min_rows:
            return None
        chunk = ChunkRef(self.partition, seqs[0], seqs[-1])
        self._c.execute(
            sa.update(outbox_table)
            .where(*self._archive(), OB.chunk.is_(None), OB.seq.between(seqs[0], seqs[-1]))
            .values(chunk=chunk.first_seq)
        )
        self._c.execute(
            sa.insert(chunks_table).values(
                partition=self.partition, first_seq=chunk.first_seq, last_seq=chunk.last_seq
            )
        )
        return chunk

    def chunks(self) -> list[ChunkRef]:
        q = sa.select(C.first_seq, C.last_seq).where(C.partition == self.partition)
        rows = self._c.execute(q.order_by(C.first_seq))
        return [ChunkRef(self.partition, int(r.first_seq), int(r.last_seq)) for r in rows]

    def chunk_rows(self, chunk: ChunkRef) -> list[Output]:
        where = '"partition" = ? AND sink = ? AND chunk = ?'
        return self._outputs(where, (self.partition, SINK_CODES["archive"], chunk.first_seq))

    def drop_chunk(self, chunk: ChunkRef) -> None:
        gone = self._c.execute(
            sa.delete(chunks_table).where(
                C.partition == self.partition,
                C.first_seq == chunk.first_seq,
                C.last_seq == chunk.last_seq,
            )
        ).rowcount
        if gone:
            self._c.execute(
                sa.delete(outbox_table).where(*self._archive(), OB.chunk == chunk.first_seq)
            )
