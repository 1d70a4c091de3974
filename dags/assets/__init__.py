"""Every data product of every Landfall pipeline, with its URI: the one place that builds the Asset objects.

DAG files import `PIPELINES` (one `PipelineAssets` per valid pipeline in config) and build each
pipeline's DAGs from it; nobody else spells a URI. Names come from `landfall.core.catalog`, buckets and
prefixes from config/. Settings are read once per process; an invalid pipeline is left out here and
reported, with its keys, as the import error of `dags/operations/pipeline_config.py`.
"""

from __future__ import annotations

from typing import NamedTuple

from airflow.sdk import Asset, AssetWatcher

from landfall.airflow.triggers.s3_landing import LandingWatch, S3LandingTrigger
from landfall.core.catalog import Chain, chain_of
from landfall.core.settings import Settings, get_project


class PipelineAssets(NamedTuple):
    settings: Settings
    names: Chain
    landing: Asset
    """Files landed in S3: one signed event per watcher poll that found new landings (raised by the
    triggerer)."""
    raw: Asset
    """A validated partition (partition key = YYYY-MM-DD, or YYYY-MM-DDTHH for an hour)."""
    quarantine: Asset
    """Landings that failed validation, moved aside with their reason.json (or refused unread)."""
    training_dataset: Asset
    """Features and the train/validation/test split of a partition."""
    drift_report: Asset
    """A prepared partition compared with the champion's training window: per-feature figures, verdict."""
    model_candidate: Asset
    """The best trial of a training run (chosen on the validation split), logged in MLflow."""
    evaluation: Asset
    """Candidate vs champion on the same held-out data, with the deploy decision."""
    production_model: Asset
    """The registered model version that holds the `champion` alias."""

    @property
    def name(self) -> str:
        return self.settings.pipeline


def _assets_of(settings: Settings, watch: LandingWatch) -> PipelineAssets:
    storage, names = settings.storage, chain_of(settings.pipeline)
    datasets, model, group = f"s3://{storage.datasets_bucket}", settings.mlflow.model_name, names.asset_group
    landing = Asset(
        name=names.landing,
        uri=f"{datasets}/{storage.landing_prefix}/",
        group=group,
        extra={
            "layout": f"{storage.landing_prefix}/<YYYY-MM-DD>/{storage.landing_filename}, or "
            f"{storage.landing_prefix}/<YYYY-MM-DD>/{storage.landing_part_glob} completed by "
            f"{storage.landing_marker}"
        },
        watchers=[
            AssetWatcher(
                name=f"{settings.pipeline}_s3_landing_watcher",
                trigger=S3LandingTrigger(watch=watch, pipeline=settings.pipeline),
            )
        ],
    )
    return PipelineAssets(
        settings=settings,
        names=names,
        landing=landing,
        raw=Asset(name=names.raw, uri=f"{datasets}/{storage.raw_prefix}/", group=group),
        quarantine=Asset(name=names.quarantine, uri=f"{datasets}/{storage.quarantine_prefix}/", group=group),
        training_dataset=Asset(
            name=names.training_dataset, uri=f"{datasets}/{storage.processed_prefix}/", group=group
        ),
        drift_report=Asset(
            name=names.drift_report, uri=f"{datasets}/{storage.processed_prefix}/drift/", group=group
        ),
        model_candidate=Asset(name=names.model_candidate, uri=f"mlflow://{model}/candidate", group=group),
        evaluation=Asset(name=names.evaluation, uri=f"mlflow://{model}/evaluation", group=group),
        production_model=Asset(name=names.production_model, uri=f"mlflow://{model}/champion", group=group),
    )


_PROJECT = get_project(strict=False)
_SETTINGS = _PROJECT.all_settings()

WATCH: LandingWatch | None = LandingWatch.of_pipelines(_SETTINGS) if _SETTINGS else None
"""Every valid pipeline's landing prefix: the same in each pipeline's trigger, so one shared stream
watches them all."""

PIPELINES: tuple[PipelineAssets, ...] = tuple(_assets_of(settings, WATCH) for settings in _SETTINGS if WATCH)
"""One entry per valid pipeline, in config order."""

INVALID_PIPELINES: dict[str, list[str]] = _PROJECT.broken
"""Pipelines left out, each with what is wrong in its block."""

__all__ = ["INVALID_PIPELINES", "PIPELINES", "WATCH", "PipelineAssets"]
