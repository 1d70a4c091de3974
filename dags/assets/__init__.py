"""Every data product of the Landfall pipeline, with its URI: the one place that names them.

DAG files import these objects; nobody else spells a URI. Buckets and prefixes come from config/.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetWatcher

from landfall.settings import get_settings
from landfall.triggers.s3_landing import S3LandingTrigger

_settings = get_settings()
_storage = _settings.storage
_datasets = f"s3://{_storage.datasets_bucket}"
_model = _settings.mlflow.model_name

LANDING = Asset(
    name="landing",
    uri=f"{_datasets}/{_storage.landing_prefix}/",
    group="landfall",
    extra={"layout": f"{_storage.landing_prefix}/<YYYY-MM-DD>/{_storage.landing_filename}"},
    watchers=[
        AssetWatcher(
            name="s3_landing_watcher",
            trigger=S3LandingTrigger(
                bucket=_storage.datasets_bucket,
                prefix=_storage.landing_prefix,
                ledger_prefix=_storage.ledger_prefix,
                aws_conn_id=_storage.aws_conn_id,
                poll_interval=_settings.watcher.poll_interval_s,
            ),
        )
    ],
)
"""A daily batch landed in S3 (one event per object, raised by the triggerer)."""

RAW = Asset(name="raw_daily", uri=f"{_datasets}/{_storage.raw_prefix}/", group="landfall")
"""A validated daily partition (partition key = YYYY-MM-DD)."""

QUARANTINE = Asset(name="quarantine", uri=f"{_datasets}/{_storage.quarantine_prefix}/", group="landfall")
"""A landed object that failed validation, moved aside with its reason.json."""

TRAINING_DATASET = Asset(
    name="training_dataset", uri=f"{_datasets}/{_storage.processed_prefix}/", group="landfall"
)
"""Features and the train/test split of a partition."""

MODEL_CANDIDATE = Asset(name="model_candidate", uri=f"mlflow://{_model}/candidate", group="landfall")
"""The best trial of a training run, logged in MLflow."""

EVALUATION = Asset(name="evaluation", uri=f"mlflow://{_model}/evaluation", group="landfall")
"""Candidate vs champion on the same held-out data, with the deploy decision."""

PRODUCTION_MODEL = Asset(name="production_model", uri=f"mlflow://{_model}/champion", group="landfall")
"""The registered model version that holds the `champion` alias."""

__all__ = [
    "EVALUATION",
    "LANDING",
    "MODEL_CANDIDATE",
    "PRODUCTION_MODEL",
    "QUARANTINE",
    "RAW",
    "TRAINING_DATASET",
]
