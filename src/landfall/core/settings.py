"""Typed settings: `config/landfall.yaml`, overridden by `LANDFALL_<SECTION>__<KEY>` environment variables.

This is the only module that reads configuration. Everything else asks `get_settings()`.
Reading one small local YAML file is the only I/O it does, so DAG files may call it at parse time.
"""

from __future__ import annotations

import os
import re
from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from landfall.core.kubernetes_settings import ComputeSettings
from landfall.core.paths import DEFAULT_CONFIG_FILE
from landfall.core.sections import Section
from landfall.core.serving_settings import ServingSettings
from landfall.core.stack_settings import StackSettings

ENV_PREFIX = "LANDFALL_"

# S3 bucket naming rules (the subset that matters for portability between AWS and SeaweedFS).
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._=/-]*$")


class ConfigError(ValueError):
    """Configuration is invalid; the message names each bad key and what is wrong with it."""


def _check_prefix(value: str) -> str:
    value = value.strip("/")
    if not _PREFIX_RE.match(value) or ".." in value.split("/"):
        raise ValueError(f"{value!r} is not a safe S3 prefix (letters, digits, . _ = - / and no '..')")
    return value


class StorageSettings(Section):
    aws_conn_id: str = "aws_default"
    datasets_bucket: str = "landfall-datasets"
    mlflow_artifacts_bucket: str = "landfall-mlflow"
    xcom_bucket: str = "landfall-xcom"
    landing_prefix: str = "daily"
    landing_filename: str = "features.parquet"
    # A multi-part partition: any number of part files completed by a marker object (Spark, Glue, dbt).
    landing_part_glob: str = "part-*.parquet"
    landing_marker: str = "_SUCCESS"
    raw_prefix: str = "raw"
    processed_prefix: str = "processed"
    quarantine_prefix: str = "quarantine"
    ledger_prefix: str = "_landfall/landing-ledger"
    xcom_prefix: str = "xcom"

    @field_validator("datasets_bucket", "mlflow_artifacts_bucket", "xcom_bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET_RE.match(value) or ".." in value:
            raise ValueError(
                f"{value!r} is not a valid S3 bucket name (3-63 chars: lower-case letters, digits, '.', '-')"
            )
        return value

    @field_validator(
        "landing_prefix",
        "raw_prefix",
        "processed_prefix",
        "quarantine_prefix",
        "ledger_prefix",
        "xcom_prefix",
    )
    @classmethod
    def _prefix(cls, value: str) -> str:
        return _check_prefix(value)

    @field_validator("landing_filename", "landing_part_glob")
    @classmethod
    def _filename(cls, value: str) -> str:
        if "/" in value or not value.endswith(".parquet"):
            raise ValueError(f"{value!r} must be a plain file name (or glob) ending in .parquet")
        return value

    @field_validator("landing_marker")
    @classmethod
    def _marker(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$", value) or value.endswith(".parquet"):
            raise ValueError(f"{value!r} must be a plain file name that is not a .parquet file")
        return value

    @model_validator(mode="after")
    def _ledger_outside_landing(self) -> StorageSettings:
        # The watcher lists the landing prefix; its own markers must not show up there.
        if (
            self.ledger_prefix.startswith(self.landing_prefix + "/")
            or self.ledger_prefix == self.landing_prefix
        ):
            raise ValueError("ledger_prefix must not be inside landing_prefix")
        return self


class ColumnSpec(Section):
    name: str
    dtype: Literal["int64", "float64", "string", "bool"]
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column {self.name!r}: min {self.min} is greater than max {self.max}")
        if self.allowed is not None and self.dtype != "string":
            raise ValueError(f"column {self.name!r}: 'allowed' only applies to string columns")
        return self


class LandingSettings(Section):
    label: str = "churned"
    min_rows: int = Field(100, ge=1)
    # Ceilings per partition (all its parts together), checked from the parquet footers before anything
    # is decoded: a small file can claim a lot. Values are then read one batch at a time, so memory does
    # not grow with the size of a day; these bound time and disk, not memory.
    max_rows: int = Field(500_000_000, ge=1)
    max_uncompressed_bytes: int = Field(32 * 1024**3, ge=1)
    max_row_group_bytes: int = Field(256 * 1024**2, ge=1)
    # Decoded bytes (rows x 8 bytes a column) per byte of file: a decompression bomb claims far more
    # than any real table compresses to (real days of this schema: about 1-3).
    max_expansion: float = Field(200.0, gt=1)
    # A day's landing (daily/<D>/...) must be ingested by this time (UTC) of the following day; the
    # landfall_freshness DAG alerts naming the day when it is not.
    expected_by: time = time(6, 0)
    columns: list[ColumnSpec]

    @model_validator(mode="after")
    def _label_is_a_column(self) -> LandingSettings:
        names = [column.name for column in self.columns]
        if len(names) != len(set(names)):
            raise ValueError(f"duplicate column names in {names}")
        if self.label not in names:
            raise ValueError(f"label {self.label!r} is not one of the columns {names}")
        if self.min_rows > self.max_rows:
            raise ValueError(f"min_rows {self.min_rows} is greater than max_rows {self.max_rows}")
        return self

    @property
    def feature_columns(self) -> list[str]:
        return [column.name for column in self.columns if column.name != self.label]


class WatcherSettings(Section):
    # The landing watcher's knobs. The whole section travels to the triggerer inside the trigger's
    # kwargs (`LandingWatch.knobs`): a field added here reaches the watcher without being spelled again.
    poll_interval_s: float = Field(2.0, gt=0, le=3600)
    # One event per poll carries at most this many landings; the rest wait for the next poll.
    max_objects_per_event: int = Field(500, ge=1, le=5000)
    # A reported batch that no ingest run has claimed after this long (doubling each time) was stranded
    # by Airflow's asset-queue race; the watcher reports it again.
    requeue_after_s: float = Field(60.0, gt=0, le=86400)
    # Every poll lists only what can change: the date folders from `open_days` before today to tomorrow,
    # folders new since the last poll and folders that changed in the last hour. The whole prefix is
    # swept every `reconcile_interval_s` (and at start) for a landing anywhere else, e.g. backdated.
    # list: poll S3 (any S3-compatible store, nothing else to run). queue: bucket notifications through a
    # message queue say which folder to look at (`queue_url`: an amqp:// URL with `#<queue>` - on the local
    # stack SeaweedFS's filer reaches RabbitMQ through the notify relay - or an SQS queue URL on AWS).
    mode: Literal["list", "queue"] = "list"
    queue_url: str = "amqp://127.0.0.1:5672/#landfall-landings"
    open_days: int = Field(2, ge=0, le=31)
    reconcile_interval_s: float = Field(300.0, ge=1, le=86400)
    # A folder nothing landed in for this long is compacted in the ledger to one watermark. At least a
    # day: a watermark must sit far behind any PUT still in flight (Last-Modified has 1 s resolution).
    ledger_retention_days: float = Field(7.0, ge=1, le=3650)

    @field_validator("queue_url")
    @classmethod
    def _queue_url(cls, value: str) -> str:
        scheme, _, rest = value.partition("://")
        if scheme not in ("amqp", "amqps", "https", "http") or not rest:
            raise ValueError("queue_url must be amqp(s)://host:port/vhost#queue or an SQS queue URL")
        if "@" in rest.split("/", 1)[0]:
            raise ValueError(
                "queue_url must not carry credentials (the trigger's arguments are stored in the metadata "
                "database): set LANDFALL_AMQP_USER and LANDFALL_AMQP_PASSWORD on the triggerer instead"
            )
        return value


class IngestSettings(Section):
    # Landings per mapped validate/publish task: a burst pays task start-up per chunk, not per file.
    chunk_size: int = Field(25, ge=1, le=10_000)


class MlflowSettings(Section):
    model_name: str = Field("landfall-churn", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    experiment: str = Field("landfall", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\- /]{0,99}$")


class TrialGrid(Section):
    learning_rate: list[float] = Field([0.001, 0.01], min_length=1)
    batch_size: list[int] = Field([64, 256], min_length=1)
    optimizer: list[Literal["adam", "adamw", "sgd"]] = Field(["adam"], min_length=1)
    hidden_units: list[int] = Field([32], min_length=1)

    @field_validator("learning_rate")
    @classmethod
    def _positive_rates(cls, values: list[float]) -> list[float]:
        if any(not 0 < value < 1 for value in values):
            raise ValueError(f"learning rates must be in (0, 1), got {values}")
        return values

    @field_validator("batch_size", "hidden_units")
    @classmethod
    def _positive_sizes(cls, values: list[int]) -> list[int]:
        if any(value < 1 or value > 100_000 for value in values):
            raise ValueError(f"sizes must be between 1 and 100000, got {values}")
        return values


class TrainingSettings(Section):
    # mlp: scikit-learn MLPClassifier (default, CPU). torch: the same network in PyTorch, on CUDA when
    # there is a GPU (`pip install landfall[torch]`).
    model: Literal["mlp", "torch"] = "mlp"
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    metric: Literal["accuracy", "f1", "roc_auc"] = "accuracy"
    max_parallel_trials: int = Field(2, ge=1, le=64)
    max_epochs: int = Field(60, ge=1, le=10_000)
    grid: TrialGrid = TrialGrid()
    # Each run trains on the processed partitions of the `window_days` days ending at its own (never a
    # later one: a backfill of an old day does not see the future); days missing in it are named.
    window_days: int = Field(7, ge=1, le=366)
    # Rows read per split at most: a larger window is sampled evenly (every k-th row), so memory is
    # bounded whatever the window holds.
    max_rows: int = Field(1_000_000, ge=1000)
    # History landed at once (many days in one burst) trains the newest complete window once instead of
    # every day in turn; backfill runs (`airflow backfill create`) always train every day in order.
    coalesce_history: bool = True

    @model_validator(mode="after")
    def _optimizers_of_the_model(self) -> TrainingSettings:
        if self.validation_fraction + self.test_fraction >= 0.9:
            raise ValueError("validation_fraction + test_fraction must leave at least 10% to train on")
        if self.model == "mlp" and "adamw" in self.grid.optimizer:
            raise ValueError("optimizer adamw needs model: torch (scikit-learn's MLP has adam and sgd)")
        return self


class DeploySettings(Section):
    """The gate. A candidate replaces the champion when it clears the floor, beats the champion by more
    than `min_improvement`, and the improvement is not sampling noise: the lower end of a paired
    bootstrap interval (same held-out rows, `confidence` one-sided) is above zero."""

    min_score: float = Field(0.90, ge=0, le=1)
    min_improvement: float = Field(0.005, ge=0, le=1)
    confidence: float = Field(0.95, ge=0.5, lt=1)
    bootstrap_samples: int = Field(1000, ge=100, le=100_000)
    # The canary: before the alias moves, the scoring service answers this many held-out rows with the
    # candidate loaded in its staging slot; every answer must equal the offline evaluation's, and the
    # slowest 5% of its requests take at most canary_max_latency_ms.
    canary_rows: int = Field(200, ge=1, le=10_000)
    canary_max_latency_ms: float = Field(2000.0, gt=0)
    # Every run of a chain DAG (ingest ... deploy) must finish within this many minutes of being queued;
    # a run that has not (stuck, failing, or still waiting) raises a `late` alert naming it.
    deadline_minutes: float = Field(60.0, gt=0, le=7 * 24 * 60)


class NotifySettings(Section):
    webhook_url: str | None = None

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must be an http(s) URL")
        return value


class Settings(BaseSettings):
    """All of Landfall's settings. Build it with `get_settings()`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    storage: StorageSettings = StorageSettings()
    landing: LandingSettings
    watcher: WatcherSettings = WatcherSettings()
    ingest: IngestSettings = IngestSettings()
    mlflow: MlflowSettings = MlflowSettings()
    training: TrainingSettings = TrainingSettings()
    deploy: DeploySettings = DeploySettings()
    compute: ComputeSettings = ComputeSettings()
    notify: NotifySettings = NotifySettings()
    serving: ServingSettings = ServingSettings()
    stack: StackSettings = StackSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments > environment > YAML file.
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls, yaml_file=config_file()))


def config_file() -> Path:
    return Path(os.environ.get("LANDFALL_CONFIG", DEFAULT_CONFIG_FILE))


def _describe(error: ValidationError) -> str:
    lines = []
    for issue in error.errors():
        location = ".".join(str(part) for part in issue["loc"]) or "(top level)"
        env_name = ENV_PREFIX + "__".join(str(part).upper() for part in issue["loc"] if isinstance(part, str))
        lines.append(f"  {location}: {issue['msg']} (set in {config_file()} or ${env_name})")
    return "invalid Landfall configuration:\n" + "\n".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Build settings from file + environment (+ explicit overrides), raising ConfigError on any problem."""
    path = config_file()
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist (set LANDFALL_CONFIG to the right path)")
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded once."""
    return load_settings()
