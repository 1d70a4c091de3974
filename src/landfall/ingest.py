"""Ingest one landed object: check its key, validate its content, then store it as the raw partition or
move it to quarantine with a machine-readable reason. Works on any boto3-compatible S3 client.

Nothing is lost: a quarantined object is copied next to its `reason.json` *before* the landing copy is
deleted, and every step is safe to repeat, so an Airflow retry simply runs it again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from landfall.keys import RejectedKey, parse_landing_key, quarantine_folder, raw_key
from landfall.settings import Settings
from landfall.validation import Problem, validate_batch

log = logging.getLogger(__name__)

Status = Literal["ingested", "quarantined", "superseded", "duplicate"]


class IngestError(RuntimeError):
    """Ingest could not decide (S3 error, vanished object); Airflow retries the task."""


@dataclass
class IngestOutcome:
    status: Status
    key: str
    etag: str
    partition: str | None = None
    uri: str | None = None  # raw partition object, or the quarantine folder
    rows: int = 0
    sha256: str = ""
    problems: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _not_found(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as error:
        if _not_found(error):
            return False
        raise


def put_verified(s3: Any, bucket: str, key: str, body: bytes, **extra: Any) -> None:
    """PUT with a Content-MD5, so S3 refuses a body damaged in transit; an S3 PUT is all-or-nothing."""
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentMD5=md5, **extra)


def ingest_landed_object(s3: Any, settings: Settings, landed: dict[str, Any]) -> IngestOutcome:
    storage = settings.storage
    bucket = storage.datasets_bucket
    key = str(landed["key"])
    etag = str(landed.get("etag", "")).strip('"')
    if landed.get("bucket", bucket) != bucket:
        raise IngestError(f"event for bucket {landed.get('bucket')!r}, expected {bucket!r}")

    try:
        landed_key = parse_landing_key(key, storage)
        partition = landed_key.partition
    except RejectedKey as rejected:
        landed_key, partition, rejection = None, landed.get("partition_date"), rejected

    # The same event delivered twice (watcher restart, retried run) for an object already quarantined.
    folder = quarantine_folder(storage, key, etag, partition)
    if _exists(s3, bucket, f"{folder}/reason.json"):
        log.info("s3://%s/%s (etag %s) was already quarantined in %s", bucket, key, etag, folder)
        return IngestOutcome("duplicate", key, etag, partition, f"s3://{bucket}/{folder}/")
    if landed_key is None:
        return quarantine(s3, settings, key, etag, partition, [Problem(rejection.reason, rejection.detail)])

    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if _not_found(error):
            raise IngestError(
                f"s3://{bucket}/{key} is gone and was neither ingested nor quarantined for etag {etag}; "
                "look for who deleted it (the asset event is kept, re-land the file to retry)"
            ) from error
        raise
    current_etag = head["ETag"].strip('"')
    if etag and current_etag != etag:
        # Overwritten after this event was raised: its new content has an event of its own.
        log.info(
            "s3://%s/%s was overwritten (etag %s -> %s); skipping the old event",
            bucket,
            key,
            etag,
            current_etag,
        )
        return IngestOutcome("superseded", key, etag, landed_key.partition)

    if head["ContentLength"] > settings.landing.max_bytes:
        problem = Problem(
            "too_large", f"{head['ContentLength']} bytes > max_bytes {settings.landing.max_bytes}"
        )
        return quarantine(s3, settings, key, current_etag, landed_key.partition, [problem])

    response = s3.get_object(Bucket=bucket, Key=key)
    if response["ETag"].strip('"') != current_etag:
        raise IngestError(f"s3://{bucket}/{key} changed while it was being read; retrying")
    data = response["Body"].read()
    report = validate_batch(data, settings.landing)
    if not report.ok:
        return quarantine(
            s3,
            settings,
            key,
            current_etag,
            landed_key.partition,
            report.problems,
            rows=report.rows,
            sha256=report.sha256,
        )

    target = raw_key(storage, landed_key.partition)
    put_verified(
        s3,
        bucket,
        target,
        data,
        ContentType="application/vnd.apache.parquet",
        Metadata={
            "source-key": key,
            "source-etag": current_etag,
            "sha256": report.sha256,
            "rows": str(report.rows),
        },
    )
    log.info("Ingested s3://%s/%s -> s3://%s/%s (%d rows)", bucket, key, bucket, target, report.rows)
    return IngestOutcome(
        "ingested",
        key,
        current_etag,
        landed_key.partition,
        f"s3://{bucket}/{target}",
        report.rows,
        report.sha256,
    )


def quarantine(
    s3: Any,
    settings: Settings,
    key: str,
    etag: str,
    partition: str | None,
    problems: list[Problem],
    *,
    rows: int = 0,
    sha256: str = "",
) -> IngestOutcome:
    """Record why, copy the object beside the record, then delete the landing copy (in that order)."""
    bucket = settings.storage.datasets_bucket
    folder = quarantine_folder(settings.storage, key, etag, partition)
    reasons = [asdict(problem) for problem in problems]
    record = {
        "source": {"bucket": bucket, "key": key, "etag": etag},
        "partition": partition,
        "problems": reasons,
        "rows": rows,
        "sha256": sha256,
        "quarantined_at": datetime.now(UTC).isoformat(),
        "what_to_do": "fix the file and land it again under the same key; this folder keeps the bad copy",
    }
    put_verified(
        s3,
        bucket,
        f"{folder}/reason.json",
        json.dumps(record, indent=2).encode(),
        ContentType="application/json",
    )
    try:
        s3.copy_object(Bucket=bucket, Key=f"{folder}/object", CopySource={"Bucket": bucket, "Key": key})
    except ClientError as error:
        if not _not_found(error):
            raise
        # A retry after the delete below already ran: the copy is in place.
        s3.head_object(Bucket=bucket, Key=f"{folder}/object")
    else:
        s3.delete_object(Bucket=bucket, Key=key)
    log.error(
        "Quarantined s3://%s/%s -> s3://%s/%s/: %s",
        bucket,
        key,
        bucket,
        folder,
        "; ".join(f"{p.code}: {p.detail}" for p in problems),
    )
    return IngestOutcome(
        "quarantined", key, etag, partition, f"s3://{bucket}/{folder}/", rows, sha256, reasons
    )
