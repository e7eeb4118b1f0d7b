#!/usr/bin/env bash
# Create (once) the dependency environment and this clone's `.venv` on top of it.
#
# Dependencies live in a venv in a cache outside the clone, keyed by the Python version and
# the dependency spec of pyproject.toml, so other clones and CI runs on the same machine reuse
# it (torch from PyPI is several GB). Each clone gets its own small `.venv` (no pip, no
# packages) whose site-packages points at the cached one through a .pth file, with this clone
# installed editable: two clones never import each other's code.
#
# Usage: ops/env.sh            -> prints the path of this clone's .venv
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${LT4REC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lt4rec}"
py="${PYTHON:-python3}"

"$py" - <<'PY' || { echo "error: Python >= 3.11 is required (found $("$py" --version 2>&1))" >&2; exit 1; }
import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

key="$("$py" - "$repo/pyproject.toml" <<'PY'
import hashlib, json, sys, tomllib
proj = tomllib.load(open(sys.argv[1], "rb"))["project"]
spec = {"py": sys.version.split()[0], "deps": proj["dependencies"],
        "extras": proj.get("optional-dependencies", {})}
print(hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16])
PY
)"
venv="$cache/venv-$key"
mkdir -p "$cache"

if [ ! -f "$venv/.complete" ]; then
  echo "ops/env.sh: creating $venv (first run downloads torch; several minutes)" >&2
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip setuptools wheel >&2
  # Dependencies only (the project itself is installed editable below, per clone).
  "$venv/bin/python" - "$repo/pyproject.toml" > "$venv/requirements.txt" <<'PY'
import sys, tomllib
proj = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(proj["dependencies"] + proj["optional-dependencies"]["dev"]))
PY
  "$venv/bin/python" -m pip install -q -r "$venv/requirements.txt" >&2
  touch "$venv/.complete"
fi

# This clone's own venv, layered on the cached dependencies.
local_venv="$repo/.venv"
if [ -L "$local_venv" ]; then rm -f "$local_venv"; fi   # older layout: a symlink to the cache
if [ ! -x "$local_venv/bin/python" ] || [ "$(cat "$local_venv/.deps" 2>/dev/null)" != "$venv" ]; then
  rm -rf "$local_venv"
  "$venv/bin/python" -m venv --without-pip "$local_venv"
  purelib() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
  purelib "$venv/bin/python" > "$(purelib "$local_venv/bin/python")/_lt4rec_deps.pth"
  # Tools run with this clone's interpreter, so they see this clone's code.
  for tool in pytest mypy; do
    printf '#!/bin/sh\nexec "$(dirname "$0")/python" -m %s "$@"\n' "$tool" > "$local_venv/bin/$tool"
    chmod +x "$local_venv/bin/$tool"
  done
  printf '#!/bin/sh\nexec "$(dirname "$0")/python" -c %s "$@"\n' \
    "'import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())'" \
    > "$local_venv/bin/lint-imports"
  chmod +x "$local_venv/bin/lint-imports"
  ln -sfn "$venv/bin/ruff" "$local_venv/bin/ruff"   # a standalone binary
  echo "$venv" > "$local_venv/.deps"
fi
# Editable install of this clone (no dependency resolution: they are all in the cache).
log="$local_venv/install.log"
if ! "$local_venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$repo" >"$log" 2>&1; then
  cat "$log" >&2
  echo "error: editable install of $repo failed (log above)" >&2
  exit 1
fi
echo "$local_venv"
