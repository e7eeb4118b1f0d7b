#!/usr/bin/env bash
# Create (once) and link the project's virtual environment.
#
# The venv lives in a cache outside the clone, keyed by the Python version and the
# dependency spec of pyproject.toml, so a second clone or CI run on the same machine reuses
# it (torch from PyPI is several GB). `.venv` in the repo is a symlink to it; the project
# itself is installed editable on every call (a few seconds), so any clone can share it.
#
# Usage: ops/env.sh            -> prints the venv path
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

# Editable install of this clone (no dependency resolution: they are all present).
"$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$repo" >&2
ln -sfn "$venv" "$repo/.venv"
echo "$venv"
