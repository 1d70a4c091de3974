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
        raise ValueError("this run has no landing events; ingest runs are started by the S3 watcher")
    log.info("%d landed object(s): %s", len(seen), [key for key, _ in seen])
    return list(seen.values())


def validate_and_store(landed: dict[str, Any]) -> dict[str, Any]:
    from landfall.ingest import ingest_landed_object

    outcome = ingest_landed_object(s3_client(), get_settings(), landed)
    return outcome.as_dict()


def publish_raw_partition(outcome: dict[str, Any], outlet: Any, state: Any, run_id: str) -> dict[str, Any]:
    """Emit the raw partition's asset event, at most once per landed (key, etag) across all runs."""
    from airflow.exceptions import AirflowSkipException

    if outcome["status"] != "ingested":
        raise AirflowSkipException(f"{outcome['key']} was {outcome['status']}: no raw partition to publish")
    # The state store remembers which run published each landed object; a retry of that same run may
    # publish again (its first attempt's event was never committed), any other run may not.
    marker = f"published/{key_digest(outcome['key'])}/{outcome['etag']}"
    published_by = state.get(marker)
    if published_by and published_by != run_id:
        raise AirflowSkipException(
            f"{outcome['key']} (etag {outcome['etag']}) was already published by run {published_by}"
        )
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
