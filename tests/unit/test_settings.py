from __future__ import annotations

import pytest

from config_files import pipeline_block, write_config
from landfall.core.settings import ConfigError, load_settings


def test_defaults_load_from_the_repository_config():
    settings = load_settings()
    assert settings.storage.datasets_bucket
    assert settings.landing.label in [column.name for column in settings.landing.columns]
    assert settings.stack.host == "127.0.0.1"
    assert settings.compute.profile == "local"


def test_environment_overrides_nested_keys(monkeypatch):
    monkeypatch.setenv("LANDFALL_STORAGE__DATASETS_BUCKET", "acme-ml-datasets")
    monkeypatch.setenv("LANDFALL_STACK__PORTS__MLFLOW", "15000")
    settings = load_settings()
    assert settings.storage.datasets_bucket == "acme-ml-datasets"
    assert settings.stack.ports.mlflow == 15000


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("LANDFALL_STORAGE__DATASETS_BUCKET", "Bad_Bucket", "storage.datasets_bucket"),
        (
            "LANDFALL_PIPELINES__CHURN__STORAGE__LANDING_PREFIX",
            "../etc",
            "pipelines.churn.storage.landing_prefix",
        ),
        ("LANDFALL_STACK__PORTS__S3", "80", "stack.ports.s3"),
        ("LANDFALL_COMPUTE__PROFILE", "cloud", "compute.profile"),
        ("LANDFALL_WATCHER__POLL_INTERVAL_S", "-1", "watcher.poll_interval_s"),
        ("LANDFALL_NOTIFY__WEBHOOK_URL", "file:///etc/passwd", "notify.webhook_url"),
        (
            "LANDFALL_PIPELINES__CHURN__STORAGE__LANDING_FILENAME",
            "x.csv",
            "pipelines.churn.storage.landing_filename",
        ),
        # A watermark of minutes could pass over a PUT of the same second: a day at least.
        ("LANDFALL_WATCHER__LEDGER_RETENTION_DAYS", "0.001", "watcher.ledger_retention_days"),
    ],
)
def test_invalid_values_fail_fast_naming_the_key(monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert expected in message
    assert variable in message  # tells the user where to fix it


def test_colliding_ports_are_rejected(monkeypatch):
    monkeypatch.setenv("LANDFALL_STACK__PORTS__MLFLOW", "8333")
    monkeypatch.setenv("LANDFALL_STACK__PORTS__S3", "8333")
    with pytest.raises(ConfigError, match="collides"):
        load_settings()


def test_unknown_keys_are_rejected(tmp_path, monkeypatch):
    write_config(tmp_path, monkeypatch, "storage:\n  bukket: x\n" + pipeline_block("one"))
    with pytest.raises(ConfigError, match=r"storage\.bukket: unknown key"):
        load_settings()


def test_missing_config_file_says_which_path(monkeypatch, tmp_path):
    monkeypatch.setenv("LANDFALL_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match=r"nope\.yaml does not exist"):
        load_settings()


def test_adamw_needs_the_torch_model(monkeypatch):
    monkeypatch.setenv("LANDFALL_PIPELINES__CHURN__TRAINING__GRID__OPTIMIZER", '["adamw"]')
    with pytest.raises(ConfigError, match="adamw needs trainer: torch"):
        load_settings()
    monkeypatch.setenv("LANDFALL_PIPELINES__CHURN__TRAINING__TRAINER", "torch")
    assert load_settings().training.grid["optimizer"] == ["adamw"]
