"""checkpoints: checkpoint format, store, registry and publishing."""
