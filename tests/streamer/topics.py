"""Test support: a full set of topic names under one unique base name."""

from __future__ import annotations

from lt4rec.config import TopicsConfig


def topics_under(base: str, partitions: int = 3) -> TopicsConfig:
    """Input, example and DLQ topics named ``{base}.imp|clk|cnv|ex|dlq``."""
    return TopicsConfig(
        impressions=f"{base}.imp",
        clicks=f"{base}.clk",
        conversions=f"{base}.cnv",
        examples=f"{base}.ex",
        dlq=f"{base}.dlq",
        partitions=partitions,
    )
