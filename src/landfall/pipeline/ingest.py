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

import hashlib
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from landfall.core.settings import Settings
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.keys import (
    LandedKey,
    RejectedKey,
    kind_of,
    outcome_record,
    parse_landing_key,
    quarantine_folder,
    raw_key,
)
from landfall.pipeline.landing import Landing, valid_etag
from landfall.pipeline.validation import PartFile, Problem, ValidationReport, validate_partition

log = logging.getLogger(__name__)

# pending: a part whose folder has no marker yet (its marker's landing will cover it).
Status = Literal["ingested", "quarantined", "superseded", "duplicate", "rejected", "pending"]


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
    files: list[str] = field(default_factory=list)  # the staged raw version's files, in order

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
    parsed = _parsed(landing.key, settings)
    partition = parsed.partition if isinstance(parsed, LandedKey) else landing.partition_date
    folder = quarantine_folder(storage, landing.key, landing.version, partition)
    decided = s3ops.get_json(s3, bucket, f"{folder}/reason.json")
    if decided is not None:
        # An earlier attempt decided to quarantine this landing and may have stopped half-way (some parts
        # moved, the marker not yet): finish that, never validate what is left again.
        return _finish_quarantine(s3, settings, landing, partition, decided[0])

    current = s3ops.head(s3, bucket, landing.key)
    if current is None or str(current["ETag"]).strip('"') != landing.etag:
        return _gone_or_replaced(s3, settings, landing, partition, current)
    if isinstance(parsed, RejectedKey):
        return quarantine(s3, settings, landing, partition, [Problem(parsed.reason, parsed.detail)])

    found = partition_members(s3, settings, landing, parsed)
    if found is None:
        log.info("%s: a part with no marker yet; the marker, when it lands, covers it", landing.key)
        return Outcome("pending", payload, partition)
    members, marker, newest = found
    if newest > landing.last_modified:
        # A part (or marker) landed after this one: its own landing is reported and covers every part
        # this one does, so only the newest of a stream of late parts does the work.
        log.info("%s: superseded by a newer object in %s", landing.key, parsed.folder)
        return Outcome("superseded", payload, partition)
    # Everything of the partition besides the landing itself (a newer marker is not: it is a landing
    # of its own): quarantined with it.
    older_marker = [marker] if marker and marker.last_modified <= landing.last_modified else []
    companions = [obj for obj in [*members, *older_marker] if obj.key != landing.key]
    if not members:
        problem = Problem(
            "empty_partition",
            f"the marker {landing.key} completes no part files: nothing in {parsed.folder} matches "
            f"{storage.landing_part_glob!r}; land the parts, then the marker",
        )
        return quarantine(s3, settings, landing, partition, [problem])
    if sum(member.size for member in members) > settings.landing.max_uncompressed_bytes:
        # Parquet on disk is no bigger than its data decoded: refuse before downloading (disk).
        problem = Problem(
            "too_large",
            f"{sum(member.size for member in members):,} bytes > max_uncompressed_bytes "
            f"{settings.landing.max_uncompressed_bytes:,}; nothing was downloaded",
        )
        return quarantine(s3, settings, landing, partition, [problem], None, companions)

    with tempfile.TemporaryDirectory(prefix="landfall-landing-") as scratch:
        files, digests = [], []
        for index, member in enumerate(members):
            local = Path(scratch) / f"{index:05d}.parquet"
            with local.open("wb") as target:
                sha256 = s3ops.download_version(s3, bucket, member.key, member.etag, target)
            if sha256 is None:
                if member.key == landing.key:
                    now = s3ops.head(s3, bucket, member.key)
                    return _gone_or_replaced(s3, settings, landing, partition, now)
                raise IngestError(f"part {member.key} changed while {landing.key} was read; retrying")
            name = _part_name(member.key) if parsed.kind != "file" else ""
            files.append(PartFile(name, local, member.size))
            digests.append(sha256)
        # An hour is a slice of a day: the day-level checks (enough rows, both classes) do not apply.
        report = validate_partition(files, settings.landing, whole_day=parsed.hour is None)
        report.sha256 = digests[0] if len(digests) == 1 else _combined(digests)
        if not report.ok:
            downloaded = {member.key: Path(part.source) for member, part in zip(members, files, strict=True)}
            return quarantine(
                s3, settings, landing, partition, report.problems, report, companions, downloaded
            )
        return _stage_raw(s3, settings, landing, partition, report, members, [f.source for f in files])


def _parsed(key: str, settings: Settings) -> LandedKey | RejectedKey:
    try:
        return parse_landing_key(key, settings.storage)
    except RejectedKey as rejected:
        return rejected


def partition_members(
    s3: Any, settings: Settings, landing: Landing, parsed: LandedKey
) -> tuple[list[Landing], Landing | None, int] | None:
    """The files a landing makes a partition of (sorted by key), the folder's marker, and the newest
    Last-Modified among the folder's marker and parts.

    A one-file day is itself. A marker covers the part files of its folder that are no newer than the
    marker: the parts present when it landed. A part newer than its folder's marker (a *late part*) is
    a new version of the partition: the parts present when it landed. A part whose folder has no marker
    yet makes nothing (None): the marker, when it lands, covers it.
    """
    if parsed.kind == "file":
        return [landing], None, landing.last_modified
    storage = settings.storage
    bucket = storage.datasets_bucket
    marker, parts = None, []
    for obj in s3ops.list_keys(s3, bucket, parsed.folder):
        name = obj["Key"][len(parsed.folder) :]
        kind = kind_of(name, storage) if "/" not in name else None
        if kind == "marker":
            marker = Landing.from_listing(bucket, storage.landing_prefix, obj)
        elif kind == "part":
            parts.append(Landing.from_listing(bucket, storage.landing_prefix, obj))
    if parsed.kind == "part" and marker is None:
        return None
    newest = max(obj.last_modified for obj in [*parts, *([marker] if marker else []), landing])
    covered = [part for part in parts if part.last_modified <= landing.last_modified]
    return sorted(covered, key=lambda part: part.key), marker, newest


def _finish_quarantine(
    s3: Any, settings: Settings, landing: Landing, partition: str | None, record: dict[str, Any]
) -> Outcome:
    """Complete a quarantine an earlier attempt recorded: copy what is not in the folder yet, delete
    the landing copies that are still the recorded versions."""
    bucket = settings.storage.datasets_bucket
    folder = quarantine_folder(settings.storage, landing.key, landing.version, partition)
    others = [Landing.from_payload(part) for part in record.get("parts") or []]
    _move(s3, bucket, folder, landing, others, None)
    return Outcome(
        "quarantined",
        landing.as_payload(),
        partition,
        f"s3://{bucket}/{folder}/",
        int(record.get("rows") or 0),
        str(record.get("sha256") or ""),
        list(record.get("problems") or []),
    )


def _move(
    s3: Any,
    bucket: str,
    folder: str,
    landing: Landing,
    others: list[Landing],
    downloaded: dict[str, Path] | None,
) -> None:
    """Copy the landing (as `object`) and its companions (by name) into the quarantine folder, then
    delete the landing copies that are still those versions: every step safe to repeat."""
    for member, name in [(landing, "object"), *((other, _part_name(other.key)) for other in others)]:
        if s3ops.exists(s3, bucket, f"{folder}/{name}"):
            continue  # copied by an earlier attempt
        if s3ops.copy_if_match(s3, bucket, member.key, f"{folder}/{name}", member.etag):
            continue
        local = (downloaded or {}).get(member.key)
        if local is None:
            raise IngestError(f"s3://{bucket}/{member.key} changed before it could be quarantined; retrying")
        s3ops.upload_file(s3, bucket, f"{folder}/{name}", local)  # the bytes that were validated
    for member in [*others, landing]:
        s3ops.delete_if_match(s3, bucket, member.key, member.etag)


def _part_name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def _combined(digests: list[str]) -> str:
    """One digest of a multi-file partition: the sha256 of its files' digests, in key order."""
    return hashlib.sha256("".join(digests).encode()).hexdigest()


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
    members: list[Landing],
    locals_: list[Any],
) -> Outcome:
    """Write the validated files under the landing's own raw version folder: `data.parquet` for a
    one-file day, each part under its own name for a multi-part partition."""
    storage = settings.storage
    bucket = storage.datasets_bucket
    assert partition is not None  # a key that parsed has a partition
    single = len(members) == 1 and members[0].key == landing.key
    uris = []
    for member, local in zip(members, locals_, strict=True):
        # Named after the source part: a retry with the same members writes the same bytes to each name.
        file = "data.parquet" if single else _part_name(member.key)
        target = raw_key(storage, partition, landing.version, file)
        metadata = {
            "source-key": member.key,
            "source-etag": member.etag,
            "source-version": landing.version,
            "sha256": report.sha256,  # of the partition: all its files
            "rows": str(report.rows),
        }
        extra = {
            "ContentType": "application/vnd.apache.parquet",
            "Metadata": metadata,
            "MetadataDirective": "REPLACE",
        }
        if not s3ops.copy_if_match(s3, bucket, member.key, target, member.etag, **extra):
            # The landed object changed after it was validated: upload the validated bytes themselves.
            content_type = extra["ContentType"]
            s3ops.upload_file(s3, bucket, target, Path(local), ContentType=content_type, Metadata=metadata)
        uris.append(f"s3://{bucket}/{target}")
    uri = uris[0] if single else f"s3://{bucket}/{raw_key(storage, partition, landing.version, '')}"
    log.info("Staged %s -> %s (%d file(s), %d rows)", landing.key, uri, len(uris), report.rows)
    return Outcome("ingested", landing.as_payload(), partition, uri, report.rows, report.sha256, files=uris)


def quarantine(
    s3: Any,
    settings: Settings,
    landing: Landing,
    partition: str | None,
    problems: list[Problem],
    report: ValidationReport | None = None,
    companions: list[Landing] | None = None,
    downloaded: dict[str, Path] | None = None,
) -> Outcome:
    """Record why, copy the landed objects beside the record, then delete the landing copies that are
    still those versions (in that order). The landing's own object is `object`; the other files of its
    partition (parts, and the marker of a late part) keep their names."""
    storage = settings.storage
    bucket = storage.datasets_bucket
    folder = quarantine_folder(storage, landing.key, landing.version, partition)
    others = companions or []
    reasons = [asdict(problem) for problem in problems]
    record = {
        "source": {"bucket": bucket, "key": landing.key, "etag": landing.etag, "put_at": landing.put_at},
        "partition": partition,
        "problems": reasons,
        "parts": [member.as_payload() for member in others],  # what a retry finishes moving
        "rows": report.rows if report else 0,
        "sha256": report.sha256 if report else "",
        "quarantined_at": datetime.now(UTC).isoformat(),
        "what_to_do": "fix the data and land it again under the same key(s); this folder keeps the bad copy",
    }
    s3ops.put_json(s3, bucket, f"{folder}/reason.json", record)
    _move(s3, bucket, folder, landing, others, downloaded)
    # So that the watcher sees a file landed here again as new at its next poll (see the function).
    s3ops.remove_empty_folders(s3, bucket, [landing.key, *(o.key for o in others)], storage.landing_prefix)
    log.error(
        "Quarantined s3://%s/%s%s -> s3://%s/%s/: %s",
        bucket,
        landing.key,
        f" and {len(others)} other object(s) of its partition" if others else "",
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
