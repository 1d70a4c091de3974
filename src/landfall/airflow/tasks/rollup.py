"""The Airflow side of hourly days: when a day landed hour by hour is published for training (the hour that
completes it, or the freshness run at the day's deadline), and only once per set of hours."""

from __future__ import annotations

import logging
from typing import Any

from landfall.airflow.tasks.ingest import s3_client
from landfall.core.settings import get_settings
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.keys import (
    day_of,
    hours_of,
    is_hourly,
    processed_head_key,
    raw_head_key,
    rollup_record,
)
from landfall.pipeline.publish import advance_ordered_head, processed_heads
from landfall.pipeline.rollup import day_rollup

log = logging.getLogger(__name__)


def late_marker(storage: Any, day: str) -> str:
    """Written when a day was rolled up at its deadline: from then on every hour landing late publishes
    the day again with what is there."""
    return f"{storage.processed_prefix}/date={day}/_late.json"


def publishable(dataset: dict[str, Any], run_id: str) -> dict[str, Any]:
    """What the `training_dataset` event of this run carries: a day's own dataset; for an hour, its day
    rolled up once the 24th hour is processed, or once its deadline has passed (any hour landing after
    the deadline publishes the day again); an hour of an incomplete day publishes nothing yet."""
    from airflow.exceptions import AirflowSkipException

    partition = str(dataset["partition"])
    if not is_hourly(partition):
        return dataset
    settings = get_settings()
    storage = settings.storage
    s3, day = s3_client(settings), day_of(partition)
    rollup = day_rollup(day, hour_heads(s3, storage, day))
    past_deadline = s3ops.exists(s3, storage.datasets_bucket, late_marker(storage, day))
    if rollup is None or (rollup["missing_hours"] and not past_deadline):
        have = len(rollup["hours"]) if rollup else 0
        raise AirflowSkipException(
            f"{partition}: {have} of 24 hours of {day} processed; the day is trained once its last hour "
            f"lands, or with the hours there by its deadline ({settings.landing.expected_by} UTC the "
            "day after)"
        )
    refusal = publish_rollup(s3, storage, rollup, run_id, bool(dataset.get("backfill")))
    if refusal:
        raise AirflowSkipException(f"{day}: {refusal}")
    return rollup


def hour_heads(s3: Any, storage: Any, day: str) -> dict[str, dict[str, Any] | None]:
    """The processed head of each hour of `day` (None for an hour not processed)."""
    return processed_heads(s3, storage, hours_of(day))


def publish_rollup(
    s3: Any, storage: Any, rollup: dict[str, Any], run_id: str, backfill: bool = False
) -> str | None:
    """Make the rollup the day's processed head (what training windows read) and claim its publication
    (once per set of hours; the same run again, e.g. a retry whose event was never committed, and a
    backfill's run may publish again). None when this run publishes it, else why not."""
    bucket, day = storage.datasets_bucket, str(rollup["partition"])
    if advance_ordered_head(s3, bucket, processed_head_key(storage, day), rollup) is None:
        return "a newer version of the day (newer hours, or a daily landing) is its processed head"
    record = rollup_record(storage, day, rollup["version"])
    if s3ops.put_json_if_absent(s3, bucket, record, {**rollup, "run_id": run_id}) or backfill:
        return None
    found = s3ops.get_json(s3, bucket, record)
    if found is not None and found[0].get("run_id") == run_id:
        return None
    owner = found[0].get("run_id") if found else "?"
    return f"these hours were already rolled up and published by run {owner}"


def raw_heads(day: str) -> tuple[bool, bool]:
    """(the day has a raw head of its own, one of its hours has one): HEAD requests, no listing."""
    settings = get_settings()
    storage, s3 = settings.storage, s3_client(settings)
    bucket = storage.datasets_bucket
    daily = s3ops.exists(s3, bucket, raw_head_key(storage, day))
    hourly = any(s3ops.exists(s3, bucket, raw_head_key(storage, hour)) for hour in hours_of(day))
    return daily, hourly


def late_rollup(day: str, run_id: str) -> dict[str, Any]:
    """At a day's deadline: a day landed hour by hour with hours missing is trained on the hours that are
    there, and an alert names the missing ones. Anything else (a daily landing, a complete day, no hour
    at all) publishes nothing here."""
    from airflow.exceptions import AirflowSkipException

    from landfall.pipeline.alerts import Alerts

    settings = get_settings()
    storage, s3 = settings.storage, s3_client(settings)
    rollup = day_rollup(day, hour_heads(s3, storage, day))
    if rollup is None:
        raise AirflowSkipException(f"{day}: no hour of it was processed (a daily landing, or nothing landed)")
    s3ops.put_json(s3, storage.datasets_bucket, late_marker(storage, day), {"run_id": run_id})
    if not rollup["missing_hours"]:
        raise AirflowSkipException(f"{day}: all 24 hours are there; preprocess rolled the day up")
    refusal = publish_rollup(s3, storage, rollup, run_id)
    if refusal:
        raise AirflowSkipException(f"{day}: {refusal}")
    missing = [hour[-2:] for hour in rollup["missing_hours"]]
    Alerts(settings.notify.webhook_url).send(
        "missing_hours",
        f"{day} is trained on {len(rollup['hours'])} of 24 hours: hours {', '.join(missing)} did not arrive "
        f"by {settings.landing.expected_by} UTC the day after; land them to train the day again",
        {"day": day, "missing_hours": missing},
    )
    return rollup
