#!/usr/bin/env bash
# Start/stop/status of both shared services (Apache Kafka and PostgreSQL) in one call.
#
# Usage: ops/services.sh start|stop|status
# `start` is idempotent; `stop` stops both (only do that to services you own: other
# engineers' tests use the shared ones on 9092/5432).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case "${1:-}" in
  start|stop)
    bash "$here/kafka/kafka.sh" "$1"
    bash "$here/postgres/postgres.sh" "$1"
    ;;
  status)
    rc=0
    bash "$here/kafka/kafka.sh" status || rc=$?
    bash "$here/postgres/postgres.sh" status || rc=$?
    exit "$rc"
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
