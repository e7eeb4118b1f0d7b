"""lt4rec: lottery-ticket sparse sharing for CTR/CVR (model, pruning, training).

Nothing in this package imports Kafka; streaming lives in :mod:`streamer`.
"""

__version__ = "0.1.0"
