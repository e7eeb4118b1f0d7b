"""Readiness probe for ops/kafka/kafka.sh, standard library only (no venv needed).

Sends one Kafka Metadata v4 request (topics=[], i.e. none) and exits 0 when the broker
lists at least one broker and an active controller, else exits 1 with the reason. This is
stronger than a TCP check: a KRaft broker only answers once it has caught up with the
metadata log, and a controller id >= 0 means topics can be created.

Usage: python3 probe.py HOST PORT
"""

from __future__ import annotations

import socket
import struct
import sys

METADATA_KEY = 3
METADATA_VERSION = 4


def _request(correlation_id: int) -> bytes:
    client = b"lt4rec-probe"
    header = struct.pack(">hhih", METADATA_KEY, METADATA_VERSION, correlation_id, len(client))
    body = struct.pack(">i?", 0, False)  # topics: empty array; allow_auto_topic_creation
    payload = header + client + body
    return struct.pack(">i", len(payload)) + payload


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


def probe(host: str, port: int, timeout: float = 3.0) -> tuple[int, int]:
    """Return (number of brokers, controller id) from a Metadata v4 response."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(_request(7))
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        data = _recv_exact(sock, size)
    corr, _throttle, n_brokers = struct.unpack_from(">iii", data, 0)
    if corr != 7:
        raise ValueError(f"unexpected correlation id {corr}")
    pos = 12
    for _ in range(n_brokers):
        pos += 4  # node_id
        (hlen,) = struct.unpack_from(">h", data, pos)
        pos += 2 + hlen + 4  # host, port
        (rlen,) = struct.unpack_from(">h", data, pos)
        pos += 2 + max(rlen, 0)  # rack (nullable)
    (clen,) = struct.unpack_from(">h", data, pos)
    pos += 2 + max(clen, 0)  # cluster_id (nullable)
    (controller,) = struct.unpack_from(">i", data, pos)
    return n_brokers, controller


def main() -> int:
    host, port = sys.argv[1], int(sys.argv[2])
    try:
        brokers, controller = probe(host, port)
    except (OSError, ValueError, struct.error) as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1
    if brokers < 1 or controller < 0:
        print(f"not ready: brokers={brokers} controller={controller}", file=sys.stderr)
        return 1
    print(f"ready: brokers={brokers} controller={controller}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
