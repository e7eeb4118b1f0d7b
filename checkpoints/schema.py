"""Registry tables (SQLAlchemy Core; SQLite and PostgreSQL).

``model_versions``: one row per version, whatever wrote it. Its life cycle::

    staging --commit--> ready --publish--> published
       |                  |--gate failed--> rejected
       |                  '--bad file-----> corrupt
       '--writer died / run failed--> failed          (retention: ready/rejected -> deleted)

``model_publications``: the history of publishing; the newest row is the version in service
(a rollback is a new row pointing at an older version). ``notified`` is the outbox flag of the
``lt4rec.models`` notice: a publisher that died between the commit and the notice re-sends it.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

KINDS = ("offline", "online", "repruned")
STATUSES = ("staging", "ready", "published", "rejected", "corrupt", "failed", "deleted")

versions_table = sa.Table(
    "model_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("parent", sa.Integer, nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("model_name", sa.String(64), nullable=False),
    sa.Column("created", sa.Float, nullable=False),  # epoch seconds (UTC)
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("path", sa.Text, nullable=True),
    sa.Column("sha256", sa.String(64), nullable=True),  # of the whole file
    sa.Column("size", sa.BigInteger, nullable=True),
    sa.Column("data_first_ts", sa.BigInteger, nullable=True),  # event time ms, first trained
    sa.Column("data_last_ts", sa.BigInteger, nullable=True),  # event time ms, last trained
    sa.Column("metrics", sa.Text, nullable=False),  # JSON object
    sa.Column("reason", sa.Text, nullable=False),
    sa.Index("ix_model_versions_kind_status", "kind", "status"),
)

publications_table = sa.Table(
    "model_publications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("version", sa.Integer, sa.ForeignKey("model_versions.version"), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # publish | rollback
    sa.Column("published_at", sa.Float, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("notified", sa.Boolean, nullable=False),
)
