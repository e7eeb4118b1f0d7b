"""Per-model tuned profiles: the defaults every consumer of a model's configuration gets.

``lt4rec/config/profiles.toml`` holds one table per model name with the settings tuned for
that model (``[sparse_sharing.train] lr = ...``), written by ``ops/bench/tune.py`` from
**validation** scores only. :func:`lt4rec.config.load_app_config` applies the profile of the
chosen ``model.name``, so ``lt4rec fit --model X``, the online worker and the re-pruning job
(which all load their configuration through it) train X with the same tuned defaults.

Precedence, lowest first: dataclass defaults < the model's profile < the TOML file <
``--set`` overrides. An explicit setting always wins over the profile;
``model.profile = "none"`` (in the file or as an override) skips the profile altogether.
A profile may not set ``model.name`` or ``model.profile``.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from lt4rec.config.loader import ConfigError, merge_under

PROFILE_FILE = Path(__file__).with_name("profiles.toml")


@cache
def load_profiles(path: Path = PROFILE_FILE) -> dict[str, dict[str, Any]]:
    """Every model's profile ``{model: {section: {key: value}}}`` from ``path``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"model profiles {path} cannot be read: {exc}") from exc
    for model, prof in data.items():
        if not isinstance(prof, dict) or not all(isinstance(v, dict) for v in prof.values()):
            raise ConfigError(f"profile {model!r} in {path} must be tables of sections")
        bad = {"name", "profile"} & set(prof.get("model", {}))
        if bad:
            raise ConfigError(f"profile {model!r} may not set model.{', model.'.join(sorted(bad))}")
    return data


def profile_for(model: str, path: Path | None = None) -> dict[str, Any]:
    """The tuned settings of ``model`` (``{}`` when it has no profile)."""
    return dict(load_profiles(path or PROFILE_FILE).get(model, {}))


def with_profile(data: dict[str, Any], default_model: str) -> dict[str, Any]:
    """Raw settings ``data`` over the profile of the model they choose (see module doc)."""
    model = data.get("model", {})
    if not isinstance(model, dict) or model.get("profile", "tuned") == "none":
        return data
    return merge_under(profile_for(str(model.get("name", default_model))), data)
