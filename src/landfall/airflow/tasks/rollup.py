"""The Airflow side of hourly days: when a day landed hour by hour is published for training (the hour that
completes it, or the freshness run at the day's deadline), and only once per set of hours.

A rolled-up day gets the whole-day verdict a daily file gets (min_rows, both label classes). A refused
day is recorded under the quarantine prefix (`reason.json`), the task that rolled it up skips (no
`training_dataset` event, so no training), and leaves the refusal in an XCom for the task after it,
which raises the `quarantine` event and the alert (a task's success raises an event for each of its
outlets, so the two events cannot come from one task)."""

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
from landfall.pipeline.publish import advance_ordered_head, processed_heads, supersedes
from landfall.pipeline.rollup import (
    day_quarantine,
    day_quarantine_folder,
    day_rollup,
    quarantine_entry,
    rollup_problems,
)

log = logging.getLogger(__name__)

REFUSED_DAY_KEY = "refused_day"
"""The XCom a task that refused a rolled-up day leaves for its `report_refused_day` task."""


def late_marker(storage: Any, day: str) -> str:
    """Written when a day was rolled up at its deadline: from then on every hour landing late publishes
    the day again with what is there."""
    return f"{storage.processed_prefix}/date={day}/_late.json"


def publishable(pipeline: str, dataset: dict[str, Any], run_id: str) -> dict[str, Any]:
    """What the `training_dataset` event of this run carries: a day's own dataset; for an hour, its day
    rolled up once the 24th hour is processed, or once its deadline has passed (any hour landing after
    the deadline publishes the day again); an hour of an incomplete day publishes nothing yet."""
    from airflow.sdk.exceptions import AirflowSkipException

    partition = str(dataset["partition"])
    if not is_hourly(partition):
        return dataset
    settings = get_settings(pipeline)
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
    publish_day(s3, settings, rollup, run_id, bool(dataset.get("backfill")))
    return rollup


def publish_day(s3: Any, settings: Any, rollup: dict[str, Any], run_id: str, backfill: bool = False) -> None:
    """Publish a rolled-up day for training, or skip saying why not: a newer version of the day is its
    head, it was published already, or it fails the whole-day checks (quarantined, and left in an XCom
    for the report task)."""
    from airflow.sdk.exceptions import AirflowSkipException

    storage, day = settings.storage, str(rollup["partition"])
    if settings.training.task != "regression" and (unknown := rollup.get("label_counts_unknown_hours")):
        log.warning(
            "%s: %d hour(s) were prepared before label counts were recorded (%s): the day's both-classes "
            "check is skipped (the trainer still refuses a one-class train split); prepare them again to "
            "check the day",
            day,
            len(unknown),
            ", ".join(hour[-2:] for hour in unknown),
        )
    problems = rollup_problems(rollup, settings.landing, settings.training.task)
    if problems:
        entry = refuse_day(s3, storage, rollup, problems, run_id, backfill)
        codes = "; ".join(f"{problem.code}: {problem.detail}" for problem in problems)
        if entry is None:
            raise AirflowSkipException(f"{day}: refused ({codes}); a newer day or another run reported it")
        _leave_for_report(entry)
        raise AirflowSkipException(
            f"{day}: refused, not trained ({codes}); recorded at {entry['quarantine_uri']}reason.json"
        )
    refusal = publish_rollup(s3, storage, rollup, run_id, backfill)
    if refusal:
        raise AirflowSkipException(f"{day}: {refusal}")


def refuse_day(
    s3: Any, storage: Any, rollup: dict[str, Any], problems: list[Any], run_id: str, backfill: bool = False
) -> dict[str, Any] | None:
    """Record a refused day under the quarantine prefix, once per set of hours (again by the same run, a
    retry, and by a backfill); its quarantine event entry, or None when this run reports nothing: the
    day's head already holds a newer version, or another run recorded the refusal."""
    bucket, day = storage.datasets_bucket, str(rollup["partition"])
    found = s3ops.get_json(s3, bucket, processed_head_key(storage, day))
    head = found[0] if found is not None else None
    if head is not None and head.get("version") != rollup["version"] and not supersedes(rollup, head):
        log.info("%s: refused rollup %s is older than the day's head %s", day, rollup["version"], head)
        return None
    record = day_quarantine(rollup, problems, run_id)
    key = f"{day_quarantine_folder(storage, rollup)}/reason.json"
    if not s3ops.put_json_if_absent(s3, bucket, key, record):
        existing = s3ops.get_json(s3, bucket, key)
        owner = existing[0].get("run_id") if existing else None
        if owner != run_id and not backfill:
            log.info("%s: the refusal of %s was reported by run %s", day, rollup["version"], owner)
            return None
    log.error("Refused day %s (hours %s): %s", day, rollup["hours"], record["problems"])
    return quarantine_entry(storage, record)


def _leave_for_report(entry: dict[str, Any]) -> None:
    from airflow.sdk import get_current_context

    get_current_context()["ti"].xcom_push(key=REFUSED_DAY_KEY, value=entry)


def report_refused_day(
    pipeline: str, refused: dict[str, Any] | None, outlet: Any, run_id: str
) -> dict[str, Any]:
    """The `quarantine` event and the alert for a day the task before refused (its XCom); skips when
    that task refused nothing (it published the day, or the day is not complete yet)."""
    from airflow.sdk.exceptions import AirflowSkipException

    from landfall.pipeline.alerts import Alerts

    if not refused:
        raise AirflowSkipException("no day was refused by this run")
    outlet.extra = {"quarantined": [refused], "rejected": []}
    day, hours = refused["partition_date"], refused["hours"]
    codes = ", ".join(sorted({problem["code"] for problem in refused["problems"]}))
    Alerts(get_settings(pipeline).notify.webhook_url).send(
        "quarantine",
        f"Refused the day {day} rolled up from {len(hours)} hour(s) ({codes}): "
        f"{'; '.join(problem['detail'] for problem in refused['problems'])}. Nothing is trained on it; "
        f"see {refused['quarantine_uri']}reason.json",
        {
            "day": day,
            "hours": hours,
            "missing_hours": refused["missing_hours"],
            "problems": refused["problems"],
            "quarantine_uri": refused["quarantine_uri"],
            "quarantined": 1,
            "rejected": 0,
            "run_id": run_id,
        },
    )
    return {"refused": day, "problems": codes}


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


def raw_heads(pipeline: str, day: str) -> tuple[bool, bool]:
    """(the day has a raw head of its own, one of its hours has one): HEAD requests, no listing."""
    settings = get_settings(pipeline)
    storage, s3 = settings.storage, s3_client(settings)
    bucket = storage.datasets_bucket
    daily = s3ops.exists(s3, bucket, raw_head_key(storage, day))
    hourly = any(s3ops.exists(s3, bucket, raw_head_key(storage, hour)) for hour in hours_of(day))
    return daily, hourly


def late_rollup(pipeline: str, day: str, run_id: str) -> dict[str, Any]:
    """At a day's deadline: a day landed hour by hour with hours missing is trained on the hours that are
    there (if they pass the whole-day checks), and an alert names the missing ones. Anything else (a
    daily landing, a complete day, no hour at all) publishes nothing here."""
    from airflow.sdk.exceptions import AirflowSkipException

    from landfall.pipeline.alerts import Alerts

    settings = get_settings(pipeline)
    storage, s3 = settings.storage, s3_client(settings)
    rollup = day_rollup(day, hour_heads(s3, storage, day))
    if rollup is None:
        raise AirflowSkipException(f"{day}: no hour of it was processed (a daily landing, or nothing landed)")
    s3ops.put_json(s3, storage.datasets_bucket, late_marker(storage, day), {"run_id": run_id})
    if not rollup["missing_hours"]:
        raise AirflowSkipException(f"{day}: all 24 hours are there; preprocess rolled the day up")
    publish_day(s3, settings, rollup, run_id)
    missing = [hour[-2:] for hour in rollup["missing_hours"]]
    Alerts(settings.notify.webhook_url).send(
        "missing_hours",
        f"{day} is trained on {len(rollup['hours'])} of 24 hours: hours {', '.join(missing)} did not arrive "
        f"by {settings.landing.expected_by} UTC the day after; land them to train the day again",
        {"day": day, "missing_hours": missing},
    )
    return rollup
