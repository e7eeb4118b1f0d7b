"""Values the types cannot refuse: non-finite numbers, negative weight decay, unknown devices,
topic names Kafka would reject, non-UTF-8 files (each one a ConfigError naming the key)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lt4rec.config import ConfigError, load_app_config
from lt4rec.config.checks import TOPIC_MAX_CHARS, check_topic_name


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr=nan", "lr must be a finite number"),
        ("train.lr=inf", "lr must be a finite number"),
        ("train.lr=-inf", "lr must be a finite number"),
        ("train.cvr_weight=nan", "cvr_weight must be a finite number"),
        ("train.weight_decay=-0.1", "weight_decay must be >= 0"),
        ("train.weight_decay=inf", "weight_decay must be a finite number"),
        ("train.device=tpu", "device 'tpu' is not one of"),
        ("train.device=cuda:x", "device 'cuda:x' is not one of"),
        ("archive.flush_seconds=inf", "flush_seconds must be a finite number"),
        ("metrics.progress_interval_s=nan", "progress_interval_s must be a finite number"),
        ("store.connect_timeout_s=0", "connect_timeout_s and statement_timeout_s must be > 0"),
        ("kafka.rebalance_timeout_s=nan", "rebalance_timeout_s must be a finite number"),
        ("joiner.max_future_skew_s=-1", "max_future_skew_s must be >= 0"),
        ("archive.max_columns=0", "max_columns must be >= 1"),
        ("topics.dlq='a b'", "dlq 'a b' may only contain"),
        ("topics.clicks='..'", "clicks '..' is not a valid Kafka topic name"),
        ("topics.examples='.'", "examples '.' is not a valid Kafka topic name"),
        (f"topics.impressions='{'i' * 250}'", "impressions is 250 characters long"),
        ("topics.conversions='k\u00e4se'", "may only contain"),
        ("topics.models=''", "models must not be empty"),
        ("feedback.heads_online_lr=nan", "heads_online_lr must be a finite number"),
        ("sim.drift=inf", "drift must be a finite number"),
    ],
)
def test_bad_values_are_refused_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_app_config(overrides=[override])


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_known_devices_are_accepted(device: str) -> None:
    assert load_app_config(overrides=[f"train.device={device}"]).train.device == device


def test_longest_valid_topic_name_is_accepted() -> None:
    name = "a._-Z9" * 41 + "abc"
    assert len(name) == TOPIC_MAX_CHARS
    check_topic_name("dlq", name)
    assert load_app_config(overrides=[f"topics.dlq={name!r}"]).topics.dlq == name


def test_non_utf8_and_directory_config_files_are_named(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'[topics]\nimpressions = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=re.escape("latin1.toml is not UTF-8 text")):
        load_app_config(latin1)
    with pytest.raises(ConfigError, match="is a directory"):
        load_app_config(tmp_path)
