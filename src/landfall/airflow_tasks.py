"""The bodies of the ingest DAG's tasks, kept out of the DAG file so that parsing it stays cheap.

They need a running Airflow task context only for what they are handed (asset events, outlet
accessors); the S3 work itself is in `landfall.ingest` and unit-tested without Airflow.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from landfall.keys import key_digest
from landfall.settings import get_settings

log = logging.getLogger(__name__)


def s3_client() -> Any:
    """The S3 client of the configured Airflow connection (endpoint and keys come from the launcher)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=get_settings().storage.aws_conn_id).get_conn()


def landed_objects_from_events(events: Iterable[Any]) -> list[dict[str, Any]]:
    """The watcher's payloads (key, size, etag, partition date) from the triggering events, deduplicated."""
    from landfall.triggers import landed_objects_in

    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        objects = landed_objects_in(event.extra)
        if not objects:
            log.warning("Ignoring an asset event without a landing payload: %s", event.extra)
        for payload in objects:
            seen.setdefault((payload["key"], payload.get("etag", "")), payload)
    if not seen:
        from airflow.exceptions import AirflowFailException

        raise AirflowFailException("this run's landing events carry no objects; see the triggerer log")
    log.info("%d landed object(s): %s", len(seen), [key for key, _ in seen])
    return list(seen.values())


def landed_object_of_partition(partition: str | None) -> list[dict[str, Any]]:
    """The landing object of one day, for a run that no landing event started: a backfill run
    (`airflow backfill create`) or the daily catch-up run, both named by their partition key."""
    from datetime import date

    from airflow.exceptions import AirflowSkipException
    from botocore.exceptions import ClientError

    from landfall.keys import landing_key
    from landfall.triggers.s3_landing import landing_payload

    if not partition:
        from airflow.exceptions import AirflowFailException

        raise AirflowFailException(
            "this run has neither landing events nor a partition key; start ingest by landing a file, "
            "or re-process days with `airflow backfill create --dag-id landfall_ingest --from-date ... "
            "--to-date ...`"
        )
    try:
        day = date.fromisoformat(partition)
    except ValueError:
        from airflow.exceptions import AirflowFailException

        raise AirflowFailException(f"partition key {partition!r} is not a YYYY-MM-DD date") from None
    storage = get_settings().storage
    key = landing_key(storage, day)
    try:
        head = s3_client().head_object(Bucket=storage.datasets_bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            raise AirflowSkipException(
                f"nothing landed for {partition}: s3://{storage.datasets_bucket}/{key} does not exist"
            ) from None
        raise
    obj = {
        "Key": key,
        "Size": head["ContentLength"],
        "ETag": head["ETag"],
        "LastModified": head["LastModified"],
    }
    payload = landing_payload(storage.datasets_bucket, storage.landing_prefix, obj)
    log.info("Re-processing the landed object of %s: %s", partition, payload)
    return [payload]


def validate_and_store(landed: dict[str, Any]) -> dict[str, Any]:
    from landfall.ingest import ingest_landed_object

    outcome = ingest_landed_object(s3_client(), get_settings(), landed)
    return outcome.as_dict()


def publish_raw_partition(
    outcome: dict[str, Any], outlet: Any, state: Any, run_id: str, reprocess: bool = False
) -> dict[str, Any]:
    """Emit the raw partition's asset event, at most once per landed (key, etag) across all runs,
    unless this run was asked to re-process history (a backfill run)."""
    from airflow.exceptions import AirflowSkipException

    if outcome["status"] != "ingested":
        raise AirflowSkipException(f"{outcome['key']} was {outcome['status']}: no raw partition to publish")
    # The state store remembers which run published each landed object; a retry of that same run may
    # publish again (its first attempt's event was never committed), any other run may not. A backfill
    # exists to run the chain again, so it publishes; the chain's own guards (one registered version
    # per candidate run, the alias moved only to a better model) keep that from promoting twice.
    marker = f"published/{key_digest(outcome['key'])}/{outcome['etag']}"
    published_by = state.get(marker)
    if published_by and published_by != run_id and not reprocess:
        raise AirflowSkipException(
            f"{outcome['key']} (etag {outcome['etag']}) was already published by run {published_by}"
        )
    if not published_by:
        state.set(marker, run_id)
    outlet.add_partitions(outcome["partition"])
    outlet.extra = {
        "partition_date": outcome["partition"],
        "uri": outcome["uri"],
        "rows": outcome["rows"],
        "sha256": outcome["sha256"],
        "source_key": outcome["key"],
        "source_etag": outcome["etag"],
    }
    log.info("Published raw partition %s: %s", outcome["partition"], outlet.extra)
    return outlet.extra


def report_quarantine(outcome: dict[str, Any], outlet: Any) -> dict[str, Any]:
    from airflow.exceptions import AirflowSkipException

    from landfall.notify import send_alert

    if outcome["status"] != "quarantined":
        raise AirflowSkipException(f"{outcome['key']} was {outcome['status']}: nothing quarantined")
    record = {
        "source_key": outcome["key"],
        "source_etag": outcome["etag"],
        "partition_date": outcome["partition"],
        "quarantine_uri": outcome["uri"],
        "problems": outcome["problems"],
    }
    outlet.extra = record
    codes = sorted({problem["code"] for problem in outcome["problems"]})
    send_alert(
        "quarantine", f"Rejected {outcome['key']!r} ({', '.join(codes)}); see {outcome['uri']}", record
    )
    return record
