#!/usr/bin/env bash
# THE test command (README, CI): lint + type check + layer contract + the whole pytest suite
# on real services.
#
# Starts Apache Kafka and PostgreSQL when they are not already running, and stops on exit
# only the ones it started itself, so the shared services of other engineers are left alone.
# Exits non-zero when any step fails, including pytest exit code 5 (no tests collected).
#
# Usage: ops/test.sh [pytest args]     e.g. ops/test.sh tests/lt4rec -x -q
# Env:   OPS_TEST_LINT=0 skips ruff + mypy + lint-imports (quick reruns of a few tests; CI never sets it)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

venv="$(bash ops/env.sh)"
export LT4REC_TEST_KAFKA="${LT4REC_TEST_KAFKA:-127.0.0.1:${KAFKA_PORT:-9092}}"
export LT4REC_TEST_PG_URL="${LT4REC_TEST_PG_URL:-postgresql+psycopg://lt4rec:lt4rec@127.0.0.1:${PG_PORT:-5432}/lt4rec_test}"

started=()
fresh_kafka_dir=""
cleanup() {
  local rc=$? svc
  for svc in "${started[@]}"; do
    echo "ops/test.sh: stopping $svc (started by this run)" >&2
    bash "ops/$svc/$svc.sh" stop >&2 || true
  done
  if [ -n "${fresh_kafka_dir:-}" ]; then rm -rf "$fresh_kafka_dir"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for svc in kafka postgres; do
  if ! bash "ops/$svc/$svc.sh" status >/dev/null 2>&1; then
    if [ "$svc" = kafka ] && [ -z "${KAFKA_DATA_DIR:-}" ]; then
      # A broker this run starts gets an empty data dir, removed again on exit: test topics
      # never pile up across runs (a developer's running broker is used as it is). Exported,
      # so nested calls (tests of this script) find the same broker.
      fresh_kafka_dir="${LT4REC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lt4rec}/kafka-data-test-$$"
      export KAFKA_DATA_DIR="$fresh_kafka_dir"
    fi
    started+=("$svc")
    bash "ops/$svc/$svc.sh" start
  fi
done

failed=()
step() {  # step NAME CMD...: run one check, remember a failure, keep going
  local name="$1" t0=$SECONDS rc=0
  shift
  echo "== ops/test.sh: $name" >&2
  "$@" || rc=$?
  echo "== ops/test.sh: $name: exit $rc after $((SECONDS - t0))s" >&2
  if [ "$rc" -ne 0 ]; then failed+=("$name (exit $rc)"); fi
}

if [ "${OPS_TEST_LINT:-1}" != 0 ]; then
  step "ruff check" "$venv/bin/ruff" check .
  step "mypy" "$venv/bin/mypy"
  step "import layers" "$venv/bin/lint-imports" --no-cache
fi
step "pytest" "$venv/bin/pytest" "$@"   # any non-zero, including 5 = no tests, fails

if [ "${#failed[@]}" -ne 0 ]; then
  echo "ops/test.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "ops/test.sh: all checks passed" >&2
