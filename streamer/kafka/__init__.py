"""Kafka I/O of the streamer: topic admin, the group consumer and its rebalance listener,
producer sinks. Only this package (and the daemon / replay tool) imports kafka-python."""
