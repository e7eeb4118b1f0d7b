"""The typed configuration loader: defaults < TOML file < ``--set`` overrides, strictly checked."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lt4rec.config import (
    AppConfig,
    ConfigError,
    ModelConfig,
    TrainConfig,
    load_app_config,
    to_dict,
    to_toml,
)
from lt4rec.config import profiles as profiles_module
from lt4rec.config.loader import build, parse_override
from lt4rec.config.profiles import load_profiles, profile_for

WriteToml = Callable[[str], Path]


@pytest.fixture
def write_toml(tmp_path: Path) -> WriteToml:
    """Factory: write TOML text to a fresh file and return its path."""
    counter = iter(range(1_000_000))

    def write(text: str) -> Path:
        path = tmp_path / f"config-{next(counter)}.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def toml_literal(value: object) -> str:
    """``value`` written as the right-hand side of a TOML assignment."""
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


# --- defaults and round trip -------------------------------------------------------------------


UNTUNED = dataclasses.replace(AppConfig(), model=ModelConfig(profile="none"))


def test_no_file_no_overrides_gives_defaults() -> None:
    assert load_app_config(overrides=["model.profile=none"]) == UNTUNED
    # with the profile (the default), every key not in the default model's profile is default
    tuned = to_dict(load_app_config())
    prof = profile_for("sparse_sharing")
    for section, values in to_dict(AppConfig()).items():
        for key, value in values.items():
            want = prof.get(section, {}).get(key, value)
            assert tuned[section][key] == (list(want) if isinstance(want, tuple) else want)


def test_defaults_round_trip_through_toml(write_toml: WriteToml) -> None:
    text = to_toml(AppConfig())
    assert load_app_config(write_toml(text)) == AppConfig()  # every key set: no profile shows
    # every section is written out with every key, defaults filled in
    parsed = tomllib.loads(text)
    assert set(parsed) == {f.name for f in dataclasses.fields(AppConfig)}
    assert parsed == to_dict(AppConfig())
    assert parsed["model"]["bottom"] == list(AppConfig().model.bottom)


def test_precedence_defaults_file_overrides(write_toml: WriteToml) -> None:
    path = write_toml('[train]\nlr = 0.5\nepochs = 3\n[kafka]\nbootstrap = "h:1"\n')
    cfg = load_app_config(path, ["train.epochs=7"])
    assert cfg.train.lr == 0.5  # file beats default
    assert cfg.train.epochs == 7  # override beats file
    assert cfg.kafka.bootstrap == "h:1"
    assert cfg.train.seed == AppConfig().train.seed  # untouched keys keep defaults


# --- unknown keys, bad types --------------------------------------------------------------------


def test_unknown_section_is_named(write_toml: WriteToml) -> None:
    with pytest.raises(ConfigError, match=r"unknown configuration key\(s\): trian"):
        load_app_config(write_toml("[trian]\nlr = 0.1\n"))


def test_unknown_key_is_named_with_known_keys(write_toml: WriteToml) -> None:
    with pytest.raises(ConfigError) as err:
        load_app_config(write_toml("[train]\nlearning_rate = 0.1\n"))
    assert "train.learning_rate" in str(err.value)
    assert "lr" in str(err.value)  # the message lists what is allowed here


def test_unknown_override_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap_servers"):
        load_app_config(overrides=["kafka.bootstrap_servers=x:1"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=2.5", r"train\.epochs: expected an integer"),
        ('train.epochs="3"', r"train\.epochs: expected an integer"),
        ("train.epochs=true", r"train\.epochs: expected an integer"),
        ("train.lr=fast", r"train\.lr: expected a number"),
        ("train.lr=true", r"train\.lr: expected a number"),
        ("prune.prune_embeddings=1", r"prune\.prune_embeddings: expected true/false"),
        ("kafka.bootstrap=9092", r"kafka\.bootstrap: expected a string"),
        ("model.bottom=64", r"model\.bottom: expected a list"),
        ('model.bottom=[64, "x"]', r"model\.bottom\[1\]: expected an integer"),
        ("train.lr.x=1", r"train\.lr: expected a number"),
    ],
)
def test_bad_types_are_rejected(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_app_config(overrides=[override])


def test_section_given_a_value_is_rejected(write_toml: WriteToml) -> None:
    with pytest.raises(ConfigError, match=r"train: expected a table, got 2"):
        load_app_config(write_toml("train = 2\n"))
    with pytest.raises(ConfigError, match=r"run: expected a table"):
        build(AppConfig, {"run": "runs/x"})


def test_override_below_a_value_is_rejected(write_toml: WriteToml) -> None:
    with pytest.raises(ConfigError, match=r"'lr' is a value, not a section"):
        load_app_config(write_toml("[train]\nlr = 0.1\n"), ["train.lr.x=1"])


def test_literal_accepts_listed_values_only() -> None:
    assert load_app_config(overrides=["model.name=mmoe"]).model.name == "mmoe"
    assert load_app_config(overrides=['joiner.policy="fnw"']).joiner.policy == "fnw"
    with pytest.raises(ConfigError) as err:
        load_app_config(overrides=["model.name=gpt"])
    assert "model.name: 'gpt' is not one of" in str(err.value)
    assert "'sparse_sharing'" in str(err.value)


def test_tuples_and_int_to_float() -> None:
    cfg = load_app_config(overrides=["model.bottom=[64, 32]", "model.tower=[]", "train.lr=1"])
    assert cfg.model.bottom == (64, 32) and isinstance(cfg.model.bottom, tuple)
    assert cfg.model.tower == ()
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)


def test_post_init_errors_name_the_section() -> None:
    with pytest.raises(ConfigError, match=r"train: epochs must be >= 1"):
        load_app_config(overrides=["train.epochs=0"])
    with pytest.raises(ConfigError, match=r"kafka: heartbeat_interval_ms"):
        load_app_config(overrides=["kafka.heartbeat_interval_ms=0"])


def test_missing_and_invalid_files_are_named(tmp_path: Path, write_toml: WriteToml) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml does not exist"):
        load_app_config(missing)
    broken = write_toml("[train\nlr = ")
    with pytest.raises(ConfigError, match=rf"{broken.name} is not valid TOML"):
        load_app_config(broken)


# --- override parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "path", "value"),
    [
        ("train.lr=0.5", ["train", "lr"], 0.5),
        ("train.epochs=3", ["train", "epochs"], 3),
        ("prune.prune_embeddings=true", ["prune", "prune_embeddings"], True),
        ("model.bottom=[64, 32]", ["model", "bottom"], [64, 32]),
        ('kafka.group_id="g 1"', ["kafka", "group_id"], "g 1"),
        ("kafka.group_id=joiner", ["kafka", "group_id"], "joiner"),  # bare string
        ("store.url=sqlite:///a=b.db", ["store", "url"], "sqlite:///a=b.db"),  # split on first =
        (" train . lr =0.5", ["train", "lr"], 0.5),
    ],
)
def test_parse_override(item: str, path: list[str], value: object) -> None:
    assert parse_override(item) == (path, value)


@pytest.mark.parametrize(
    ("item", "message"),
    [("train.lr", "must look like section.key=value"), ("lr=0.1", "must name section.key"),
     ("train..lr=1", "must name section.key"), ("=1", "must name section.key")],
)  # fmt: skip
def test_parse_override_rejects_malformed(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_override(item)


# --- property-based: any valid override value survives load and to_toml ------------------------

override_values = st.one_of(
    st.tuples(st.just("train.epochs"), st.integers(1, 10_000)),
    st.tuples(st.just("data.batch_size"), st.integers(1, 2**31)),
    st.tuples(st.just("train.lr"), st.floats(1e-9, 1e3, allow_nan=False, allow_infinity=False)),
    st.tuples(st.just("prune.rate"), st.floats(0.001, 0.999)),
    st.tuples(st.just("kafka.group_id"), st.text(min_size=1, max_size=30)),
    st.tuples(st.just("model.bottom"), st.lists(st.integers(1, 4096), max_size=5)),
    st.tuples(st.just("prune.prune_embeddings"), st.booleans()),
    st.tuples(st.just("prune.scope"), st.sampled_from(["global", "layer"])),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=st.lists(override_values, min_size=1, max_size=4))
def test_overrides_load_and_round_trip(items: list[tuple[str, object]], write_toml) -> None:
    overrides = [f"{key}={toml_literal(value)}" for key, value in items]
    cfg = load_app_config(overrides=overrides)
    expected = dict(items)  # last override of a key wins
    for key, value in expected.items():
        section, name = key.split(".")
        got = getattr(getattr(cfg, section), name)
        if isinstance(value, list):
            assert got == tuple(value)
        else:
            assert got == value
    assert load_app_config(write_toml(to_toml(cfg))) == cfg


# --- per-model tuned profiles --------------------------------------------------------------------


@pytest.fixture
def profile_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """Factory: make ``text`` the profile file for this test."""

    def use(text: str) -> Path:
        path = tmp_path / f"profiles-{len(list(tmp_path.iterdir()))}.toml"
        path.write_text(text, encoding="utf-8")
        monkeypatch.setattr(profiles_module, "PROFILE_FILE", path)
        return path

    return use


def test_profile_of_the_chosen_model_sits_under_file_and_overrides(
    profile_file: Callable[[str], Path], write_toml: WriteToml
) -> None:
    profile_file(
        "[mmoe.train]\nlr = 0.004\nepochs = 3\n[mmoe.model]\nexperts = 8\n"
        "[sparse_sharing.train]\nlr = 0.002\n"
    )
    cfg = load_app_config(overrides=["model.name=mmoe"])
    assert (cfg.train.lr, cfg.train.epochs, cfg.model.experts) == (0.004, 3, 8)
    assert load_app_config().train.lr == 0.002  # default model: sparse_sharing's profile
    assert load_app_config(overrides=["model.name=esmm"]).train.lr == TrainConfig().lr  # none
    path = write_toml('[model]\nname = "mmoe"\n[train]\nepochs = 5\n')
    cfg = load_app_config(path, ["train.lr=0.5"])
    assert (cfg.train.lr, cfg.train.epochs, cfg.model.experts) == (0.5, 5, 8)  # explicit wins
    off = load_app_config(path, ["model.profile=none"])
    assert (off.train.lr, off.model.experts) == (TrainConfig().lr, ModelConfig().experts)


def test_bad_profiles_are_clear_errors(profile_file: Callable[[str], Path]) -> None:
    profile_file('[mmoe.model]\nname = "esmm"\n')
    with pytest.raises(ConfigError, match=r"may not set model\.name"):
        load_app_config(overrides=["model.name=mmoe"])
    profile_file("[mmoe.train]\nnope = 1\n")
    with pytest.raises(ConfigError, match=r"train\.nope"):
        load_app_config(overrides=["model.name=mmoe"])


def test_every_shipped_profile_builds_for_its_model() -> None:
    from lt4rec.models import MODELS

    for model, prof in load_profiles().items():
        assert model in MODELS, model
        cfg = load_app_config(overrides=[f"model.name={model}"])
        for section, values in prof.items():
            got = to_dict(getattr(cfg, section))
            for key, value in values.items():
                assert got[key] == value, f"{model}: {section}.{key}"
