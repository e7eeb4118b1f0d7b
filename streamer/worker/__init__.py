"""The online worker: fine-tunes the sparse-shared model from ``topics.examples``, masks frozen.

One concept per module:

* :mod:`.examples` — one record -> a validated :class:`~.examples.Example` or a DLQ reason;
* :mod:`.encode` — examples -> tensors with the model's spec and training normalizer;
* :mod:`.dedup` — one high-water mark per (topic partition, join partition);
* :mod:`.position` — offsets + marks + counters + data range: what a checkpoint records;
* :mod:`.batching` — validation, dedup and the micro-batch cut (``time`` / ``offset``);
* :mod:`.holder` — the model + optimiser + feedback loss the trainer steps through (swappable);
* :mod:`.progressive` — progressive validation: exact rolling AUC, river logloss, ADWIN drift;
* :mod:`.checkpoint` — online versions in the registry and where a worker starts;
* :mod:`.trainer` — the training thread and THE commit order;
* :mod:`.daemon` — the consumer loop (cooperative-sticky group, backpressure, rebalances);
* :mod:`.metrics` — Prometheus series and the progress line; :mod:`.status` — ``worker status``.

Docs: ``docs/worker.md``.
"""

from streamer.worker.daemon import WorkerDaemon, WorkerOptions, WorkerSummary
from streamer.worker.holder import ModelHolder, WorkerError

__all__ = ["ModelHolder", "WorkerDaemon", "WorkerError", "WorkerOptions", "WorkerSummary"]
