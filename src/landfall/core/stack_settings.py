"""The embedded stack and the scale-out profile (`stack:` in config/landfall.yaml): ports, services, state."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from landfall.core.paths import REPO_ROOT
from landfall.core.sections import Section


class PortSettings(Section):
    airflow_api: int = Field(8080, ge=1024, le=65535)
    mlflow: int = Field(5000, ge=1024, le=65535)
    s3: int = Field(8333, ge=1024, le=55535)
    seaweed_master: int = Field(9333, ge=1024, le=55535)
    seaweed_volume: int = Field(9340, ge=1024, le=55535)
    seaweed_filer: int = Field(8888, ge=1024, le=55535)
    serving: int = Field(8090, ge=1024, le=65535)
    notify_relay: int = Field(8091, ge=1024, le=65535)  # queue mode only: the filer's webhook -> RabbitMQ

    def shifted(self, by: int) -> PortSettings:
        """The same layout moved by `by` (a second stack beside this one: the benchmark's)."""
        return PortSettings(**{name: port + by for name, port in self.model_dump().items()})

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


class ScaleoutSettings(Section):
    """The scale-out profile's services: PostgreSQL for the Airflow and MLflow metadata, Redis as the
    Celery broker. Put a password in the URL through LANDFALL_STACK__SCALEOUT__POSTGRES_URL, not here."""

    postgres_url: str = "postgresql://postgres@127.0.0.1:5432"
    airflow_database: str = Field("landfall_airflow", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    mlflow_database: str = Field("landfall_mlflow", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    broker_url: str = "redis://127.0.0.1:6379/0"
    # The Celery queue this stack's tasks go to and its worker reads: another worker on the same broker
    # (another stack, or one left over from a crash) never takes them.
    queue: str = Field("landfall", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    worker_concurrency: int = Field(4, ge=1, le=256)
    # High availability: schedulers and triggerers side by side on the same PostgreSQL database (Airflow
    # locks rows; a trigger moves to a live triggerer when its triggerer stops heartbeating).
    schedulers: int = Field(1, ge=1, le=4)
    triggerers: int = Field(1, ge=1, le=4)

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


class StackSettings(Section):
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
