"""streamer: Kafka I/O, the event joiner, the online worker and the scheduler."""
