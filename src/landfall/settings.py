"""Typed settings: `config/landfall.yaml`, overridden by `LANDFALL_<SECTION>__<KEY>` environment variables.

This is the only module that reads configuration. Everything else asks `get_settings()`.
Reading one small local YAML file is the only I/O it does, so DAG files may call it at parse time.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_FILE = REPO_ROOT / "config" / "landfall.yaml"
ENV_PREFIX = "LANDFALL_"

# S3 bucket naming rules (the subset that matters for portability between AWS and SeaweedFS).
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._=/-]*$")


class ConfigError(ValueError):
    """Configuration is invalid; the message names each bad key and what is wrong with it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_prefix(value: str) -> str:
    value = value.strip("/")
    if not _PREFIX_RE.match(value) or ".." in value.split("/"):
        raise ValueError(f"{value!r} is not a safe S3 prefix (letters, digits, . _ = - / and no '..')")
    return value


class StorageSettings(_Section):
    aws_conn_id: str = "aws_default"
    datasets_bucket: str = "landfall-datasets"
    mlflow_artifacts_bucket: str = "landfall-mlflow"
    xcom_bucket: str = "landfall-xcom"
    landing_prefix: str = "daily"
    landing_filename: str = "features.parquet"
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

    @field_validator("landing_filename")
    @classmethod
    def _filename(cls, value: str) -> str:
        if "/" in value or not value.endswith(".parquet"):
            raise ValueError(f"{value!r} must be a plain file name ending in .parquet")
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


class ColumnSpec(_Section):
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


class LandingSettings(_Section):
    label: str = "churned"
    min_rows: int = Field(100, ge=1)
    max_rows: int = Field(1_000_000, ge=1)
    max_bytes: int = Field(256 * 1024 * 1024, ge=1)
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


class WatcherSettings(_Section):
    poll_interval_s: float = Field(2.0, gt=0, le=3600)


class MlflowSettings(_Section):
    model_name: str = Field("landfall-churn", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    experiment: str = Field("landfall", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\- /]{0,99}$")


class TrialGrid(_Section):
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


class TrainingSettings(_Section):
    # mlp: scikit-learn MLPClassifier (default, CPU). torch: the same network in PyTorch, on CUDA when
    # there is a GPU (`pip install landfall[torch]`).
    model: Literal["mlp", "torch"] = "mlp"
    test_fraction: float = Field(0.2, gt=0, lt=1)
    metric: Literal["accuracy", "f1", "roc_auc"] = "accuracy"
    max_parallel_trials: int = Field(2, ge=1, le=64)
    max_epochs: int = Field(60, ge=1, le=10_000)
    grid: TrialGrid = TrialGrid()

    @model_validator(mode="after")
    def _optimizers_of_the_model(self) -> TrainingSettings:
        if self.model == "mlp" and "adamw" in self.grid.optimizer:
            raise ValueError("optimizer adamw needs model: torch (scikit-learn's MLP has adam and sgd)")
        return self


class DeploySettings(_Section):
    min_score: float = Field(0.90, ge=0, le=1)
    min_improvement: float = Field(0.005, ge=0, le=1)


_K8S_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_K8S_QUANTITY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")


def _k8s_name(value: str) -> str:
    if not _K8S_NAME_RE.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes name (lower-case letters, digits, '-', '.')")
    return value


class PodResources(_Section):
    """CPU and memory of a training pod, as Kubernetes quantities (`cpu: "4"`, `memory: 16Gi`)."""

    cpu: str = "2"
    memory: str = "8Gi"

    @field_validator("cpu", "memory")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if not _K8S_QUANTITY_RE.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes quantity such as 500m, 2, 8Gi")
        return value


class Toleration(_Section):
    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = "NoSchedule"


class PodVolume(_Section):
    """A PersistentVolumeClaim mounted into the pod (shared data, checkpoints)."""

    name: str
    claim_name: str
    mount_path: str
    read_only: bool = False

    @field_validator("name", "claim_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _k8s_name(value)

    @field_validator("mount_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/"):
            raise ValueError(f"{value!r} must be an absolute path without '..'")
        return value


class SecretEnv(_Section):
    """One key of a Kubernetes Secret exposed to the pod as an environment variable."""

    env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    secret: str
    key: str

    @field_validator("secret")
    @classmethod
    def _name(cls, value: str) -> str:
        return _k8s_name(value)


class KubernetesSettings(_Section):
    """How a training trial runs as a pod. Only read when `compute.profile` is `kubernetes`."""

    namespace: str = "landfall"
    image: str = "ghcr.io/landfall/trainer:0.1.0"
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[str] = []
    service_account: str | None = None
    kubernetes_conn_id: str = "kubernetes_default"
    cmds: list[str] = ["python", "-m", "landfall.trainer"]
    gpus: int = Field(1, ge=0, le=16)
    gpu_resource: str = "nvidia.com/gpu"
    requests: PodResources = PodResources()
    limits: PodResources = PodResources(cpu="4", memory="16Gi")
    node_selector: dict[str, str] = {}
    gpu_type_label: str = "nvidia.com/gpu.product"
    gpu_types: list[str] = []
    tolerations: list[Toleration] = []
    volumes: list[PodVolume] = []
    env: dict[str, str] = {}
    secrets: list[SecretEnv] = []
    startup_timeout_s: int = Field(600, ge=10, le=24 * 3600)
    labels: dict[str, str] = {"app.kubernetes.io/part-of": "landfall"}

    @field_validator("namespace", "service_account")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return value if value is None else _k8s_name(value)

    @field_validator("image_pull_secrets")
    @classmethod
    def _secret_names(cls, values: list[str]) -> list[str]:
        return [_k8s_name(value) for value in values]

    @field_validator("cmds")
    @classmethod
    def _not_empty(cls, values: list[str]) -> list[str]:
        if not values:
            raise ValueError("cmds must name the trainer command, e.g. [python, -m, landfall.trainer]")
        return values


class ComputeSettings(_Section):
    profile: Literal["local", "kubernetes"] = "local"
    kubernetes: KubernetesSettings = KubernetesSettings()


class NotifySettings(_Section):
    webhook_url: str | None = None

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must be an http(s) URL")
        return value


class PortSettings(_Section):
    airflow_api: int = Field(8080, ge=1024, le=65535)
    mlflow: int = Field(5000, ge=1024, le=65535)
    s3: int = Field(8333, ge=1024, le=55535)
    seaweed_master: int = Field(9333, ge=1024, le=55535)
    seaweed_volume: int = Field(9340, ge=1024, le=55535)
    seaweed_filer: int = Field(8888, ge=1024, le=55535)

    @model_validator(mode="after")
    def _distinct(self) -> PortSettings:
        # SeaweedFS also listens on each port + 10000 (gRPC) and on s3+1..s3+3.
        used: dict[int, str] = {}
        for name, port in self.model_dump().items():
            derived = [port]
            if name.startswith("seaweed_") or name == "s3":
                derived.append(port + 10000)
            if name == "s3":
                derived += [port + 1, port + 2, port + 3]
            for candidate in derived:
                if candidate in used:
                    raise ValueError(f"port {candidate} of {name} collides with {used[candidate]}")
                used[candidate] = name
        return self


class ScaleoutSettings(_Section):
    """The scale-out profile's services: PostgreSQL for the Airflow and MLflow metadata, Redis as the
    Celery broker. Put a password in the URL through LANDFALL_STACK__SCALEOUT__POSTGRES_URL, not here."""

    postgres_url: str = "postgresql://postgres@127.0.0.1:5432"
    airflow_database: str = Field("landfall_airflow", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    mlflow_database: str = Field("landfall_mlflow", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    broker_url: str = "redis://127.0.0.1:6379/0"
    worker_concurrency: int = Field(4, ge=1, le=256)

    @field_validator("postgres_url")
    @classmethod
    def _postgres(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgresql+psycopg2://")):
            raise ValueError("postgres_url must be a postgresql:// URL without a database name")
        return value.rstrip("/")

    @field_validator("broker_url")
    @classmethod
    def _broker(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "amqp://", "amqps://")):
            raise ValueError("broker_url must be a redis:// or amqp:// URL")
        return value

    def database_url(self, database: str) -> str:
        """A libpq URL (psycopg2.connect, psql)."""
        return f"{self.postgres_url.replace('postgresql+psycopg2://', 'postgresql://', 1)}/{database}"

    def sqlalchemy_url(self, database: str) -> str:
        """The URL for Airflow and MLflow, naming the driver that is installed (psycopg2)."""
        return self.database_url(database).replace("postgresql://", "postgresql+psycopg2://", 1)


class StackSettings(_Section):
    # embedded: SQLite metadata, LocalExecutor (one machine, nothing to install).
    # scaleout: PostgreSQL metadata (Airflow and MLflow), CeleryExecutor with a Redis broker and a
    # Celery worker process; the same DAG files either way.
    profile: Literal["embedded", "scaleout"] = "embedded"
    scaleout: ScaleoutSettings = ScaleoutSettings()
    host: str = "127.0.0.1"
    state_dir: Path = Path(".landfall")
    parallelism: int = Field(4, ge=1, le=64)
    startup_timeout_s: float = Field(240, gt=0)
    ports: PortSettings = PortSettings()

    @property
    def state_path(self) -> Path:
        path = self.state_dir.expanduser()
        return path if path.is_absolute() else REPO_ROOT / path


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
    mlflow: MlflowSettings = MlflowSettings()
    training: TrainingSettings = TrainingSettings()
    deploy: DeploySettings = DeploySettings()
    compute: ComputeSettings = ComputeSettings()
    notify: NotifySettings = NotifySettings()
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
