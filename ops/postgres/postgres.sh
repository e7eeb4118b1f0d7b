#!/usr/bin/env bash
# Private PostgreSQL cluster for development and tests (no system service touched).
#
# Why: the SQL state store is tested on a real PostgreSQL as well as SQLite. The cluster
# lives in the lt4rec cache outside the repo, listens on 127.0.0.1 only and has its socket
# dir next to it, so it never collides with a system PostgreSQL. It is a throw-away test
# cluster: fsync is off to make the per-test CREATE/DROP DATABASE cheap.
#
# Usage: ops/postgres/postgres.sh start|stop|status
# Env:   PG_PORT (5432)  PG_DATA_DIR (${LT4REC_CACHE}/pgdata, or pgdata-<port> off 5432)
#        LT4REC_CACHE (~/.cache/lt4rec)  PG_BIN (directory holding initdb/pg_ctl)
# Makes: role lt4rec / password lt4rec with CREATEDB, database lt4rec_test owned by it:
#        postgresql+psycopg://lt4rec:lt4rec@127.0.0.1:5432/lt4rec_test
set -euo pipefail

cache="${LT4REC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lt4rec}"
port="${PG_PORT:-5432}"
[[ "$port" =~ ^[0-9]+$ ]] || { echo "postgres.sh: error: PG_PORT must be a number" >&2; exit 1; }
if [ "$port" = 5432 ]; then default_data="$cache/pgdata"; else default_data="$cache/pgdata-$port"; fi
data="${PG_DATA_DIR:-$default_data}"
rundir="$data.run"
logfile="$rundir/postgres.log"
role=lt4rec
database=lt4rec_test

die() { echo "postgres.sh: error: $*" >&2; exit 1; }
say() { echo "postgres.sh: $*" >&2; }
is_root() { [ "$(id -u)" = 0 ]; }

find_bin() {  # directory holding initdb + pg_ctl; installs the Debian package if needed
  local d
  if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return 0; fi
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"; return 0
  fi
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  if is_root && command -v apt-get >/dev/null 2>&1; then
    say "PostgreSQL binaries missing: installing the Debian package 'postgresql'"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  fi
  die "initdb/pg_ctl not found: install PostgreSQL (apt-get install postgresql) or set PG_BIN"
}

as_pg() {  # run a server command as the 'postgres' OS user when root (initdb refuses root)
  if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

prepare_dirs() {
  mkdir -p "$data" "$rundir"
  if is_root; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    # The postgres user must be able to reach the cache (e.g. under /root, mode 700):
    # grant search (x) only, never listing, on the ancestors that lack it.
    local d; d="$(dirname "$data")"
    while [ "$d" != "/" ]; do
      runuser -u postgres -- test -x "$d" 2>/dev/null || { say "chmod o+x $d (postgres must traverse it)"; chmod o+x "$d"; }
      d="$(dirname "$d")"
    done
    chown postgres: "$data" "$rundir"
  fi
  chmod 700 "$data"
}

running() { as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; }

psql_admin() {  # superuser over the private socket (trust auth, local only)
  "$bin/psql" -X -q -h "$rundir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"
}

cmd_start() {
  bin="$(find_bin)"
  prepare_dirs
  exec 9>"$rundir/start.lock"
  flock 9
  if running; then
    say "already running (port $port, data $data)"
  else
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "port $port is in use by another process (not the cluster in $data)"
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
      as_pg "$bin/initdb" -D "$data" -U postgres -E UTF8 --no-locale \
        --auth-local=trust --auth-host=scram-sha-256 >"$rundir/initdb.log" 2>&1 \
        || { cat "$rundir/initdb.log" >&2; die "initdb failed"; }
      cat >> "$data/postgresql.conf" <<CONF
# --- ops/postgres/postgres.sh (throw-away test cluster) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$rundir'
max_connections = 200
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
    fi
    local t0=$SECONDS
    as_pg "$bin/pg_ctl" -D "$data" -l "$logfile" -o "-p $port -k $rundir" -w -t 60 start >/dev/null 9>&- \
      || { tail -n 30 "$logfile" >&2; die "pg_ctl start failed; see $logfile"; }
    say "started PostgreSQL on 127.0.0.1:$port in $((SECONDS - t0))s"
  fi
  psql_admin <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
    CREATE ROLE $role LOGIN CREATEDB PASSWORD '$role';
  ELSE
    ALTER ROLE $role LOGIN CREATEDB PASSWORD '$role';
  END IF;
END \$\$;
SELECT 'CREATE DATABASE $database OWNER $role' WHERE NOT EXISTS
  (SELECT FROM pg_database WHERE datname = '$database')\gexec
SQL
  echo "postgres.sh: ready: postgresql+psycopg://$role:$role@127.0.0.1:$port/$database"
}

cmd_stop() {
  bin="$(find_bin)"
  if [ ! -f "$data/PG_VERSION" ] || ! running; then
    echo "postgres.sh: not running (port $port)"
    return 0
  fi
  as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null \
    || as_pg "$bin/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null
  echo "postgres.sh: stopped (port $port)"
}

cmd_status() {
  bin="$(find_bin)"
  if [ -f "$data/PG_VERSION" ] && running; then
    echo "running: $("$bin/postgres" --version) port $port data $data"
  else
    echo "not running: PostgreSQL port $port (data $data)"
    return 3
  fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
