"""Examine one landing: check its key, validate its content, then stage it as a raw version or move it to
quarantine with a machine-readable reason. Works on any boto3-compatible S3 client; no Airflow.

Nothing is lost and nothing outside the landing prefix is touched:

* a key outside the landing prefix, or an ETag that is not one, is `rejected` before any S3 request;
* the exact version that was validated is what gets copied (copy-if-match; the downloaded bytes are
  uploaded instead when the landing object changed meanwhile);
* a quarantined landing is copied beside its `reason.json` *before* the landing copy is deleted, and
  the delete is conditional on the ETag, so a newer PUT of the same key is never removed;
* every step is safe to repeat, so an Airflow retry simply runs it again.

Staging does not publish: `landfall.pipeline.publish` records the outcome and moves the partition head.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from landfall.core.settings import Settings
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.keys import RejectedKey, outcome_record, parse_landing_key, quarantine_folder, raw_key
from landfall.pipeline.landing import Landing, valid_etag
from landfall.pipeline.validation import Problem, ValidationReport, validate_parquet

log = logging.getLogger(__name__)

Status = Literal["ingested", "quarantined", "superseded", "duplicate", "rejected"]


class IngestError(RuntimeError):
    """Ingest could not decide (S3 error, vanished object); Airflow retries the task."""


@dataclass
class Outcome:
    """What examining one landing decided; `publish` turns it into a record and an asset event."""

    status: Status
    landing: dict[str, Any]
    partition: str | None = None
    uri: str | None = None  # the staged raw version, or the quarantine folder
    rows: int = 0
    sha256: str = ""
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return str(self.landing["key"])

    @property
    def version(self) -> str:
        return Landing.from_payload(self.landing).version

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Outcome:
        return cls(**value)


def examine(s3: Any, settings: Settings, landing: Landing, reprocess: bool = False) -> Outcome:
    """Decide what one landing is. A landing that already has an outcome record is a `duplicate` at
    once, unless this run re-processes history (a backfill), which validates and stages it again."""
    storage = settings.storage
    bucket = storage.datasets_bucket
    payload = landing.as_payload()
    if landing.bucket != bucket or not landing.key.startswith(storage.landing_prefix + "/"):
        # Never read, copy or delete outside the landing prefix, whoever asks.
        problem = Problem(
            "outside_landing_prefix",
            f"s3://{landing.bucket}/{landing.key} is not under "
            f"s3://{bucket}/{storage.landing_prefix}/; nothing was touched",
        )
        return Outcome("rejected", payload, landing.partition_date, problems=[asdict(problem)])
    if not valid_etag(landing.etag):
        problem = Problem("bad_etag", f"{landing.etag[:80]!r} is not an S3 ETag; nothing was touched")
        return Outcome("rejected", payload, landing.partition_date, problems=[asdict(problem)])

    if not reprocess and s3ops.exists(
        s3, bucket, outcome_record(storage.ledger_prefix, landing.key, landing.version)
    ):
        return Outcome("duplicate", payload, landing.partition_date)
    try:
        partition: str | None = parse_landing_key(landing.key, storage).partition
        rejection = None
    except RejectedKey as rejected:
        partition, rejection = landing.partition_date, rejected

    current = s3ops.head(s3, bucket, landing.key)
    if current is None or str(current["ETag"]).strip('"') != landing.etag:
        return _gone_or_replaced(s3, settings, landing, partition, current)
    if rejection is not None:
        return quarantine(s3, settings, landing, partition, [Problem(rejection.reason, rejection.detail)])
    if landing.size > settings.landing.max_bytes:
        problem = Problem("too_large", f"{landing.size} bytes > max_bytes {settings.landing.max_bytes}")
        return quarantine(s3, settings, landing, partition, [problem])

    with tempfile.NamedTemporaryFile(prefix="landfall-landing-", suffix=".parquet") as local:
        sha256 = s3ops.download_version(s3, bucket, landing.key, landing.etag, local)
        if sha256 is None:
            return _gone_or_replaced(s3, settings, landing, partition, s3ops.head(s3, bucket, landing.key))
        report = validate_parquet(local.name, landing.size, settings.landing)
        report.sha256 = sha256
        if not report.ok:
            return quarantine(s3, settings, landing, partition, report.problems, report, Path(local.name))
        return _stage_raw(s3, settings, landing, partition, report, Path(local.name))


def _gone_or_replaced(
    s3: Any, settings: Settings, landing: Landing, partition: str | None, current: dict[str, Any] | None
) -> Outcome:
    """The landing object is not the version the event named: already handled, overwritten, or lost."""
    bucket, payload = settings.storage.datasets_bucket, landing.as_payload()
    if s3ops.exists(s3, bucket, outcome_record(settings.storage.ledger_prefix, landing.key, landing.version)):
        return Outcome("duplicate", payload, partition)
    folder = quarantine_folder(settings.storage, landing.key, landing.version, partition)
    if s3ops.exists(s3, bucket, f"{folder}/object"):
        # Quarantined by an earlier attempt whose outcome was not recorded yet: report it again.
        reason, _ = s3ops.get_json(s3, bucket, f"{folder}/reason.json") or ({"problems": []}, "")
        return Outcome(
            "quarantined", payload, partition, f"s3://{bucket}/{folder}/", problems=reason["problems"]
        )
    if current is not None:
        # Overwritten after this event was raised: the new content has an event of its own.
        log.info("s3://%s/%s was overwritten (%s -> %s)", bucket, landing.key, landing.etag, current["ETag"])
        return Outcome("superseded", payload, partition)
    raise IngestError(
        f"s3://{bucket}/{landing.key} (etag {landing.etag}) is gone and was neither ingested nor "
        "quarantined; look for who deleted it (the asset event is kept: land the file again to retry)"
    )


def _stage_raw(
    s3: Any,
    settings: Settings,
    landing: Landing,
    partition: str | None,
    report: ValidationReport,
    local: Path,
) -> Outcome:
    """Write the validated version under its own raw version folder (never overwritten)."""
    storage = settings.storage
    bucket = storage.datasets_bucket
    assert partition is not None  # a key that parsed has a partition
    target = raw_key(storage, partition, landing.version)
    metadata = {
        "source-key": landing.key,
        "source-etag": landing.etag,
        "source-version": landing.version,
        "sha256": report.sha256,
        "rows": str(report.rows),
    }
    extra = {
        "ContentType": "application/vnd.apache.parquet",
        "Metadata": metadata,
        "MetadataDirective": "REPLACE",
    }
    if not s3ops.copy_if_match(s3, bucket, landing.key, target, landing.etag, **extra):
        # The landing object changed after it was validated: upload the validated bytes themselves.
        s3ops.upload_file(s3, bucket, target, local, ContentType=extra["ContentType"], Metadata=metadata)
    log.info("Staged s3://%s/%s -> s3://%s/%s (%d rows)", bucket, landing.key, bucket, target, report.rows)
    return Outcome(
        "ingested", landing.as_payload(), partition, f"s3://{bucket}/{target}", report.rows, report.sha256
    )


def quarantine(
    s3: Any,
    settings: Settings,
    landing: Landing,
    partition: str | None,
    problems: list[Problem],
    report: ValidationReport | None = None,
    local: Path | None = None,
) -> Outcome:
    """Record why, copy the landed version beside the record, then delete the landing copy if it is
    still that version (in that order)."""
    bucket = settings.storage.datasets_bucket
    folder = quarantine_folder(settings.storage, landing.key, landing.version, partition)
    reasons = [asdict(problem) for problem in problems]
    record = {
        "source": {"bucket": bucket, "key": landing.key, "etag": landing.etag, "put_at": landing.put_at},
        "partition": partition,
        "problems": reasons,
        "rows": report.rows if report else 0,
        "sha256": report.sha256 if report else "",
        "quarantined_at": datetime.now(UTC).isoformat(),
        "what_to_do": "fix the file and land it again under the same key; this folder keeps the bad copy",
    }
    s3ops.put_json(s3, bucket, f"{folder}/reason.json", record)
    if not s3ops.copy_if_match(s3, bucket, landing.key, f"{folder}/object", landing.etag):
        if local is None:
            raise IngestError(f"s3://{bucket}/{landing.key} changed before it could be quarantined; retrying")
        s3ops.upload_file(s3, bucket, f"{folder}/object", local)
    s3ops.delete_if_match(s3, bucket, landing.key, landing.etag)
    log.error(
        "Quarantined s3://%s/%s -> s3://%s/%s/: %s",
        bucket,
        landing.key,
        bucket,
        folder,
        "; ".join(f"{p.code}: {p.detail}" for p in problems),
    )
    return Outcome(
        "quarantined",
        landing.as_payload(),
        partition,
        f"s3://{bucket}/{folder}/",
        record["rows"],
        record["sha256"],
        reasons,
    )
