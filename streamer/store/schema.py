"""SQL tables of the joiner state (SQLAlchemy Core; SQLite and PostgreSQL).

``joiner_entries`` is keyed by (partition, impression_id) and indexed by (partition, deadline)
so that closing due windows is an index range scan. The outbox holds every staged output until
its sink acknowledges it; archive rows carry the ``chunk`` (first seq) they were sealed into.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

meta_table = sa.Table(
    "joiner_meta",
    metadata,
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("data", sa.Text, nullable=False),  # JSON: offsets, max ts, seqs, counters
)

entries_table = sa.Table(
    "joiner_entries",
    metadata,
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("impression_id", sa.Text, primary_key=True),
    sa.Column("state", sa.SmallInteger, nullable=False),
    sa.Column("deadline", sa.BigInteger, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Index("ix_joiner_entries_deadline", "partition", "deadline"),
    # SQLite: rows by rowid, the (partition, impression_id) key in a narrow index. Random ids
    # then split small index pages, not pages of whole rows (features included).
)

outbox_table = sa.Table(
    "joiner_outbox",
    metadata,
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("sink", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("key", sa.LargeBinary, nullable=False),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("headers", sa.Text, nullable=False),  # JSON [[name, latin-1 text], ...]
    sa.Column("chunk", sa.BigInteger, nullable=True),  # archive: first seq of its sealed chunk
    sqlite_with_rowid=False,
)

chunks_table = sa.Table(
    "joiner_chunks",
    metadata,
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("first_seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
)

SINK_CODES = {"examples": 0, "dlq": 1, "archive": 2}
