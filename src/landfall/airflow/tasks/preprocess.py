"""The body of the preprocess DAG's task: the current raw version of a partition becomes features and a
three-way split under the processed prefix (large data never travels through XCom: URIs do)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from landfall.airflow.tasks.ingest import s3_client
from landfall.core.settings import get_settings
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.keys import processed_head_key, processed_key
from landfall.pipeline.prepare import prepare
from landfall.pipeline.publish import advance_ordered_head, current_head, raw_partitions
from landfall.pipeline.rollup import day_rollup

log = logging.getLogger(__name__)


def raw_partition(extra: dict[str, Any], partition: str) -> dict[str, Any]:
    """The partition this run prepares: the head the raw event published, checked against the current
    head (a newer landing of the day may have been published since; it has a run of its own)."""
    from airflow.exceptions import AirflowFailException, AirflowSkipException

    published = raw_partitions(extra).get(partition)
    if published is None:
        raise AirflowFailException(f"the raw_daily event carries no partition {partition!r}")
    settings = get_settings()
    head = current_head(s3_client(settings), settings.storage, partition)
    if head is not None and head["version"] != published["version"]:
        raise AirflowSkipException(
            f"{partition}: version {published['version']} was superseded by {head['version']}, "
            "which has its own preprocess run"
        )
    return published


def preprocess(raw: dict[str, Any], partition: str) -> dict[str, Any]:
    """Raw version (one or many files) -> features + train/validation/test splits and the canary sample
    under the processed prefix, streamed through local files in bounded memory; then the partition's
    processed head names it, unless a newer raw version's preprocessing got there first."""
    settings = get_settings()
    storage, training = settings.storage, settings.training
    s3 = s3_client(settings)
    bucket = storage.datasets_bucket
    sources = [str(uri) for uri in raw.get("files") or [raw["uri"]]]
    with tempfile.TemporaryDirectory(prefix="landfall-preprocess-") as scratch:
        local = []
        for index, uri in enumerate(sources):
            source_bucket, _, key = uri.removeprefix("s3://").partition("/")
            path = Path(scratch) / f"raw-{index:05d}.parquet"
            s3ops.download_file(s3, source_bucket, key, path)
            local.append(path)
        out_dir = Path(scratch) / "out"
        out_dir.mkdir()
        prepared = prepare(
            local,
            settings.landing,
            training.validation_fraction,
            training.test_fraction,
            settings.deploy.canary_rows,
            out_dir,
        )
        uris = {}
        for name, path in prepared.files.items():
            target = processed_key(storage, partition, raw["version"], name)
            s3ops.upload_file(s3, bucket, target, path, ContentType="application/vnd.apache.parquet")
            uris[f"{name}_uri"] = f"s3://{bucket}/{target}"
    rows = {f"rows_{name}": count for name, count in prepared.rows.items()}
    log.info(
        "Partition %s (version %s, %d raw file(s)): %s rows, %d features",
        partition,
        raw["version"],
        len(sources),
        rows,
        len(prepared.features),
    )
    dataset = {
        "partition": partition,
        "version": raw["version"],
        **rows,
        "features": prepared.features,
        "source_sha256": raw.get("sha256"),
        "backfill": bool(raw.get("backfill")),
        **uris,
    }
    head = {**dataset, "last_modified": raw.get("last_modified", 0), "etag": raw.get("etag", "")}
    if advance_ordered_head(s3, bucket, processed_head_key(storage, partition), head) is None:
        log.info("%s: a newer raw version was preprocessed meanwhile; the processed head stays", partition)
    return dataset


def publishable(dataset: dict[str, Any]) -> dict[str, Any]:
    """What the `training_dataset` event of this run carries: a day's own dataset; for an hour, its
    day rolled up once the day's 24th hour is processed (the run that completes it publishes it, once);
    an hour of an incomplete day publishes nothing yet (skipped)."""
    from airflow.exceptions import AirflowSkipException

    from landfall.pipeline.keys import day_of, is_hourly

    partition = str(dataset["partition"])
    if not is_hourly(partition):
        return dataset
    settings = get_settings()
    s3, day = s3_client(settings), day_of(partition)
    rollup = day_rollup(day, hour_heads(s3, settings.storage, day))
    if rollup is None or rollup["missing_hours"]:
        have = len(rollup["hours"]) if rollup else 0
        raise AirflowSkipException(
            f"{partition}: {have} of 24 hours of {day} processed; the day is trained once its last hour "
            f"lands, or with the hours there by its deadline ({settings.landing.expected_by} UTC the "
            "day after)"
        )
    if not publish_rollup(s3, settings.storage, rollup):
        raise AirflowSkipException(f"{day}: these hours were already rolled up and published by another run")
    return rollup


def hour_heads(s3: Any, storage: Any, day: str) -> dict[str, dict[str, Any] | None]:
    """The processed head of each hour of `day` (None for an hour not processed)."""
    from landfall.pipeline.keys import hours_of

    heads: dict[str, dict[str, Any] | None] = {}
    for hour in hours_of(day):
        found = s3ops.get_json(s3, storage.datasets_bucket, processed_head_key(storage, hour))
        heads[hour] = found[0] if found else None
    return heads


def publish_rollup(s3: Any, storage: Any, rollup: dict[str, Any]) -> bool:
    """Make the rollup the day's processed head (what training windows read) and claim its publication;
    False when a newer rollup is the head, or another run already published this one."""
    from landfall.pipeline.keys import rollup_record

    bucket, day = storage.datasets_bucket, str(rollup["partition"])
    if advance_ordered_head(s3, bucket, processed_head_key(storage, day), rollup) is None:
        return False
    return s3ops.put_json_if_absent(s3, bucket, rollup_record(storage, day, rollup["version"]), rollup)


def has_hours(day: str) -> bool:
    """Whether any hour of `day` was published as a raw partition (the day lands hour by hour)."""
    settings = get_settings()
    storage = settings.storage
    listing = s3_client(settings).list_objects_v2(
        Bucket=storage.datasets_bucket, Prefix=f"{storage.raw_prefix}/date={day}T"
    )
    return any(obj["Key"].endswith("/_head.json") for obj in listing.get("Contents", []))


def late_rollup(day: str) -> dict[str, Any]:
    """At a day's deadline: a day landed hour by hour with hours missing is trained on the hours that are
    there, and an alert names the missing ones. Anything else (a daily landing, a complete day, no hour
    at all) publishes nothing here."""
    from airflow.exceptions import AirflowSkipException

    from landfall.pipeline.alerts import Alerts

    settings = get_settings()
    s3 = s3_client(settings)
    rollup = day_rollup(day, hour_heads(s3, settings.storage, day))
    if rollup is None:
        raise AirflowSkipException(f"{day}: no hour of it was processed (a daily landing, or nothing landed)")
    if not rollup["missing_hours"]:
        raise AirflowSkipException(f"{day}: all 24 hours are there; preprocess rolled the day up")
    if not publish_rollup(s3, settings.storage, rollup):
        raise AirflowSkipException(f"{day}: these hours were already rolled up and published")
    missing = [hour[-2:] for hour in rollup["missing_hours"]]
    Alerts(settings.notify.webhook_url).send(
        "missing_hours",
        f"{day} is trained on {len(rollup['hours'])} of 24 hours: hours {', '.join(missing)} did not arrive "
        f"by {settings.landing.expected_by} UTC the day after; land them to train the full day again",
        {"day": day, "missing_hours": missing},
    )
    return rollup
