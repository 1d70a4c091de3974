"""Publishing a staged landing: at most once per landing, and the newest landing of a day always wins.

Two S3 records make that hold under concurrent runs, retries and replayed events, with conditional
writes instead of locks:

* the **outcome record** `<ledger>/outcomes/<digest>/<version>.json` is created with If-None-Match: the
  first run to record a landing owns it. A retry of that run publishes again (its first attempt's asset
  event was never committed); any other run sees a duplicate and publishes nothing - unless it is
  re-processing history (a backfill), which exists to run the chain again.
* the **partition head** `raw/date=<day>/_head.json` names the version that is current, replaced with
  If-Match (compare-and-set): a landing older than the head's never takes it back, however the runs
  interleave.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from landfall.core.shared_settings import StorageSettings
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.ingest import IngestError, Outcome
from landfall.pipeline.keys import outcome_record, processed_head_key, raw_head_key
from landfall.pipeline.landing import Landing

log = logging.getLogger(__name__)

_CAS_ATTEMPTS = 20


def claim_outcome(s3: Any, storage: StorageSettings, outcome: Outcome, run_id: str, reprocess: bool) -> bool:
    """Create the landing's outcome record; True when this run may publish the landing."""
    bucket = storage.datasets_bucket
    key = outcome_record(storage.ledger_prefix, outcome.key, outcome.version)
    record = {
        "status": outcome.status,
        "run_id": run_id,
        "key": outcome.key,
        "version": outcome.version,
        "partition": outcome.partition,
        "uri": outcome.uri,
        "recorded_at": datetime.now(UTC).isoformat(),
    }
    if s3ops.put_json_if_absent(s3, bucket, key, record):
        return True
    existing = s3ops.get_json(s3, bucket, key)
    owner = existing[0].get("run_id") if existing else None
    if owner == run_id:
        return True  # a retry of the run that recorded it: its first attempt's event never committed
    if reprocess:
        log.info("%s was published by run %s; re-published by this backfill run", outcome.key, owner)
        return True
    log.info("%s (version %s) was already published by run %s", outcome.key, outcome.version, owner)
    return False


def mark_superseded(s3: Any, storage: StorageSettings, outcome: Outcome, newer: str) -> None:
    bucket = storage.datasets_bucket
    key = outcome_record(storage.ledger_prefix, outcome.key, outcome.version)
    found = s3ops.get_json(s3, bucket, key)
    if found is not None:
        record, etag = found
        s3ops.put_json_if_match(s3, bucket, key, {**record, "status": "superseded", "by": newer}, etag)


def _order(head: dict[str, Any]) -> tuple[int, str]:
    return int(head.get("last_modified", 0)), str(head.get("etag", ""))


def supersedes(mine: dict[str, Any], head: dict[str, Any]) -> bool:
    """Whether `mine` may replace `head` as a partition's head (ties go to `mine`, as before).

    Landings (a day's or an hour's raw or processed version) are ordered by what S3 says: the newer
    Last-Modified, then the ETag. Two days rolled up from their hours are ordered by what they hold, since
    a rollup missing an hour that is not the newest has the newest hour's Last-Modified all the same: one
    that holds every hour of the other, each at the same or a newer version, wins; when neither holds
    the other, the one with more hours wins, then the newer. So the rollup of every hour's current version
    beats any other, and a late hour always reaches training.
    """
    mine_hours, head_hours = _hour_versions(mine), _hour_versions(head)
    if mine_hours is None or head_hours is None:
        return _order(mine) >= _order(head)
    mine_holds, head_holds = _holds(mine_hours, head_hours), _holds(head_hours, mine_hours)
    if mine_holds != head_holds:
        return mine_holds
    return (len(mine_hours), _order(mine)) >= (len(head_hours), _order(head))


def _hour_versions(head: dict[str, Any]) -> dict[str, str] | None:
    versions = head.get("hour_versions")
    return versions if isinstance(versions, dict) else None


def _holds(bigger: dict[str, str], smaller: dict[str, str]) -> bool:
    """Every hour of `smaller` is in `bigger`, at the same or a newer version."""
    return all(
        hour in bigger and _version_order(bigger[hour]) >= _version_order(version)
        for hour, version in smaller.items()
    )


def _version_order(version: str) -> tuple[int, str]:
    """A landing version `<last-modified epoch>-<etag>` in the order of `_order`."""
    modified, _, etag = str(version).partition("-")
    return (int(modified), etag) if modified.isdigit() else (0, str(version))


def advance_head(s3: Any, storage: StorageSettings, outcome: Outcome, run_id: str) -> dict[str, Any] | None:
    """Make this landing the partition's current version unless a newer landing already is; the head
    record when this landing is current, None when it was superseded."""
    assert outcome.partition is not None
    landing = Landing.from_payload(outcome.landing)
    mine = {
        "partition": outcome.partition,
        "version": landing.version,
        "uri": outcome.uri,
        "files": outcome.files or [outcome.uri],
        "rows": outcome.rows,
        "sha256": outcome.sha256,
        "source_key": landing.key,
        "source_etag": landing.etag,
        "last_modified": landing.last_modified,
        "etag": landing.etag,
        "run_id": run_id,
        "published_at": datetime.now(UTC).isoformat(),
    }
    head = advance_ordered_head(s3, storage.datasets_bucket, raw_head_key(storage, outcome.partition), mine)
    if head is None:
        log.info("%s: a newer version than %s is the head", outcome.partition, landing.version)
    return head


def advance_ordered_head(s3: Any, bucket: str, key: str, mine: dict[str, Any]) -> dict[str, Any] | None:
    """Compare-and-set a head record (`version`, `last_modified`, `etag`; a rollup's `hour_versions`):
    `mine` replaces the head unless the head is already that version (returned as it is) or supersedes
    it (None; see `supersedes`)."""
    for _ in range(_CAS_ATTEMPTS):
        found = s3ops.get_json(s3, bucket, key)
        head, etag = found if found is not None else (None, None)
        if head is not None and head.get("version") == mine["version"]:
            return head
        if head is not None and not supersedes(mine, head):
            return None
        if s3ops.put_json_if_match(s3, bucket, key, mine, etag):
            return mine
    raise IngestError(f"the head s3://{bucket}/{key} kept changing; retrying")


def processed_heads(
    s3: Any, storage: StorageSettings, partitions: list[str]
) -> dict[str, dict[str, Any] | None]:
    """The processed head of each partition (None where it has none): what a window or a rollup reads."""
    heads: dict[str, dict[str, Any] | None] = {}
    for partition in partitions:
        found = s3ops.get_json(s3, storage.datasets_bucket, processed_head_key(storage, partition))
        heads[partition] = found[0] if found else None
    return heads


def current_head(s3: Any, storage: StorageSettings, partition: str) -> dict[str, Any] | None:
    found = s3ops.get_json(s3, storage.datasets_bucket, raw_head_key(storage, partition))
    return found[0] if found else None


def quarantine_entry(outcome: Outcome) -> dict[str, Any]:
    """One landing in the quarantine asset event's extra (`quarantined` or `rejected` list)."""
    return {
        "source_key": outcome.key,
        "source_etag": outcome.landing.get("etag"),
        "source_version": f"{outcome.landing.get('last_modified')}-{outcome.landing.get('etag')}",
        "partition_date": outcome.partition,
        "quarantine_uri": outcome.uri,
        "problems": outcome.problems,
    }


def quarantine_records(extra: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every landing a quarantine asset event reports, quarantined or rejected."""
    extra = extra or {}
    return [*extra.get("quarantined", []), *extra.get("rejected", [])]


def raw_partitions(extra: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The partition heads a chunk's raw asset events published, by partition key. Airflow gives each
    partition key of a task's outlet its own event with the same extra, so an event's own partition
    is `raw_partitions(extra)[event partition_key]` (see `published_head`)."""
    return dict((extra or {}).get("partitions") or {})


def published_head(event: dict[str, Any]) -> dict[str, Any] | None:
    """The head a raw_daily event (as the REST API returns it) published for its own partition."""
    return raw_partitions(event.get("extra")).get(event.get("partition_key") or "")
