"""The sections every pipeline shares (`storage` buckets, `watcher`, `ingest`, `notify`), and one
pipeline's resolved storage: the shared buckets with its own prefixes."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from landfall.core.pipeline_settings import S3Prefix
from landfall.core.sections import Section

# S3 bucket naming rules (the subset that matters for portability between AWS and SeaweedFS).
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class SharedStorage(Section):
    """The buckets every pipeline shares, and the prefixes of Landfall's own records in them."""

    aws_conn_id: str = "aws_default"
    datasets_bucket: str = "landfall-datasets"
    mlflow_artifacts_bucket: str = "landfall-mlflow"
    xcom_bucket: str = "landfall-xcom"
    # The watcher's records: each pipeline's under `<ledger_prefix>/<name>` unless it names its own.
    ledger_prefix: S3Prefix = "_landfall/ledgers"
    xcom_prefix: S3Prefix = "xcom"

    @field_validator("datasets_bucket", "mlflow_artifacts_bucket", "xcom_bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET_RE.match(value) or ".." in value:
            raise ValueError(
                f"{value!r} is not a valid S3 bucket name (3-63 chars: lower-case letters, digits, '.', '-')"
            )
        return value


OWNED_PREFIXES = (
    "landing_prefix",
    "raw_prefix",
    "processed_prefix",
    "quarantine_prefix",
    "ledger_prefix",
    "predictions_prefix",
)
"""A pipeline's own prefixes (`PipelineStorage.prefixes` fills in their defaults)."""


class StorageSettings(Section):
    """One pipeline's storage, resolved: the shared buckets with the pipeline's own prefixes."""

    aws_conn_id: str
    datasets_bucket: str
    mlflow_artifacts_bucket: str
    xcom_bucket: str
    landing_prefix: str
    landing_filename: str
    landing_part_glob: str
    landing_marker: str
    raw_prefix: str
    processed_prefix: str
    quarantine_prefix: str
    ledger_prefix: str
    predictions_prefix: str
    xcom_prefix: str

    def owned_prefixes(self) -> dict[str, str]:
        """The prefixes that hold this pipeline's files and no other's."""
        return {name: getattr(self, name) for name in OWNED_PREFIXES}


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


class NotifySettings(Section):
    webhook_url: str | None = None

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must be an http(s) URL")
        return value
