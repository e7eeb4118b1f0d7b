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
    spec.loader.exec_module(module)
    return module
