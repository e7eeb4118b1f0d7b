"""Configuration of the prediction server ``lt4rec serve`` (``[serve]``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lt4rec.config.checks import require_finite

UnknownPolicy = Literal["ignore", "refuse"]
Engine = Literal["sparse", "dense"]
NoticeStart = Literal["newest", "beginning"]


@dataclass(frozen=True)
class ServeConfig:
    """HTTP binding, request limits, inference engine and model following of a server.

    A server is a stateless replica: it loads the version in service from the registry
    (``[registry]``) at start, then follows the ``topics.models`` notices (``[kafka]``).
    Request limits bound the memory and CPU one request can take; every request over a
    limit gets a 4xx with the reason (see docs/serving.md).
    """

    host: str = "127.0.0.1"  # loopback by default: put a proxy in front to expose it
    port: int = 8080  # 0 = an ephemeral port (printed at start)
    workers: int = 1  # server processes sharing the socket (Prometheus multiprocess mode)
    max_body_bytes: int = 1_048_576  # larger bodies: 413
    max_instances: int = 1024  # instances per /predict request; more: 413
    max_string_bytes: int = 1024  # one categorical value (UTF-8 bytes); longer: 422
    max_list_len: int = 256  # one multi-valued feature's list; longer: 422
    unknown_features: UnknownPolicy = "ignore"  # "refuse": 422 naming them
    engine: Engine = "sparse"  # sparse per-task export, or the dense masked model
    # sparse export: a compacted layer below this density is stored as CSR (0 = all dense)
    csr_threshold: float = 0.1
    threads: int = 1  # torch intra-op threads per server process
    hash_cache_size: int = 1_000_000  # cached (field, value) -> bucket ids per process; 0 = off
    limit_concurrency: int = 256  # connections + in-flight requests; more get 503
    timeout_keep_alive_s: int = 5
    # follow the registry too: every N s compare its current publication (0 = notices only)
    registry_poll_s: float = 30.0
    notice_start: NoticeStart = "newest"  # where the notice follower starts reading the topic
    access_log: bool = False

    def __post_init__(self) -> None:
        require_finite(self)
        if not self.host:
            raise ValueError("host must not be empty")
        if not 0 <= self.port < 65536:
            raise ValueError("port must be in [0, 65535]")
        if self.workers < 1 or self.threads < 1:
            raise ValueError("workers and threads must be >= 1")
        if min(self.max_body_bytes, self.max_instances, self.max_string_bytes) < 1:
            raise ValueError("max_body_bytes, max_instances and max_string_bytes must be >= 1")
        if self.max_list_len < 1:
            raise ValueError("max_list_len must be >= 1")
        if not 0.0 <= self.csr_threshold <= 1.0:
            raise ValueError("csr_threshold must be in [0, 1]")
        if self.hash_cache_size < 0:
            raise ValueError("hash_cache_size must be >= 0")
        if self.limit_concurrency < 1 or self.timeout_keep_alive_s < 1:
            raise ValueError("limit_concurrency and timeout_keep_alive_s must be >= 1")
        if self.registry_poll_s < 0:
            raise ValueError("registry_poll_s must be >= 0")
