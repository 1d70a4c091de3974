"""Every data product of the Landfall pipeline, with its URI: the one place that builds the Asset objects.

DAG files import these objects; nobody else spells a URI. Names come from `landfall.core.catalog`,
buckets and prefixes from config/.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetWatcher

from landfall.airflow.triggers.s3_landing import LandingWatch, S3LandingTrigger
from landfall.core import catalog
from landfall.core.settings import get_settings

_settings = get_settings()
_storage = _settings.storage
_datasets = f"s3://{_storage.datasets_bucket}"
_model = _settings.mlflow.model_name
_group = catalog.ASSET_GROUP

LANDING = Asset(
    name=catalog.LANDING,
    uri=f"{_datasets}/{_storage.landing_prefix}/",
    group=_group,
    extra={
        "layout": f"{_storage.landing_prefix}/<YYYY-MM-DD>/{_storage.landing_filename}, or "
        f"{_storage.landing_prefix}/<YYYY-MM-DD>/{_storage.landing_part_glob} completed by "
        f"{_storage.landing_marker}"
    },
    watchers=[
        AssetWatcher(
            name="s3_landing_watcher",
            trigger=S3LandingTrigger(watch=LandingWatch.from_settings(_settings)),
        )
    ],
)
"""Files landed in S3: one signed event per watcher poll that found new landings (raised by the triggerer)."""

RAW = Asset(name=catalog.RAW, uri=f"{_datasets}/{_storage.raw_prefix}/", group=_group)
"""A validated daily partition (partition key = YYYY-MM-DD)."""

QUARANTINE = Asset(name=catalog.QUARANTINE, uri=f"{_datasets}/{_storage.quarantine_prefix}/", group=_group)
"""Landings that failed validation, moved aside with their reason.json (or refused unread)."""

TRAINING_DATASET = Asset(
    name=catalog.TRAINING_DATASET, uri=f"{_datasets}/{_storage.processed_prefix}/", group=_group
)
"""Features and the train/validation/test split of a partition."""

MODEL_CANDIDATE = Asset(name=catalog.MODEL_CANDIDATE, uri=f"mlflow://{_model}/candidate", group=_group)
"""The best trial of a training run (chosen on the validation split), logged in MLflow."""

EVALUATION = Asset(name=catalog.EVALUATION, uri=f"mlflow://{_model}/evaluation", group=_group)
"""Candidate vs champion on the same held-out data, with the deploy decision."""

PRODUCTION_MODEL = Asset(name=catalog.PRODUCTION_MODEL, uri=f"mlflow://{_model}/champion", group=_group)
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
