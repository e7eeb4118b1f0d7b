"""Loading the benchmark scripts of ``ops/bench/`` (plain files, not a package) in tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def load_bench(name: str) -> ModuleType:
    """``ops/bench/{name}.py`` imported as module ``bench_{name}``."""
    spec = importlib.util.spec_from_file_location(
        f"bench_{name}", REPO / "ops" / "bench" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    bench = str(REPO / "ops" / "bench")
    sys.path.insert(0, bench)  # scripts import their siblings (tune.py imports offline.py)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(bench)
    return module
