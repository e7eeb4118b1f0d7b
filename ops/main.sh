#!/usr/bin/env bash
# The README's "run the main job" command: the full pipeline on embedded defaults.
#
#   bash ops/main.sh [lt4rec run options, e.g. --set sim.impressions=50000]
#
# Creates (once) the cached virtual environment, starts the local Apache Kafka broker when it is
# not running (and stops it again at the end if it started it), then runs `lt4rec run`:
# simulate -> offline lottery-ticket fit, published -> the live system as processes (server,
# worker, scheduler, joiner) on the replayed log -> online publications -> re-prune, publish,
# hot-swap in worker and server under a /predict load -> summary + runs/main/report.html.
# Ctrl-C stops every daemon (exit 130).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
venv="$(bash ops/env.sh)"

started_kafka=0
if ! bash ops/kafka/kafka.sh status >/dev/null 2>&1; then
  bash ops/kafka/kafka.sh start
  started_kafka=1
fi
cleanup() { if [ "$started_kafka" = 1 ]; then bash ops/kafka/kafka.sh stop || true; fi; }
trap cleanup EXIT

"$venv/bin/lt4rec" run "$@"
