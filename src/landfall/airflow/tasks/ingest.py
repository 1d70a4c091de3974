"""The bodies of the ingest DAG's tasks, kept out of the DAG file so that parsing it stays cheap.

Each body resolves settings and the S3 client once (the edge) and hands them to the Airflow-free
`landfall.pipeline` functions, which do the work and are tested without Airflow.

Work is chunked: a run may carry thousands of landings (several watcher events merge into one run), and
one mapped task per landing would exceed `[core] max_map_length` and pay a task's start-up per file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable
from typing import Any

from landfall.core.settings import Settings, get_settings
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.alerts import Alerts
from landfall.pipeline.ingest import IngestError, Outcome, examine
from landfall.pipeline.keys import RejectedKey, batch_claim, landing_folder, parse_landing_key
from landfall.pipeline.landing import ForgedEvent, Landing, signing_key, verified_batch
from landfall.pipeline.publish import (
    advance_head,
    claim_outcome,
    mark_superseded,
    quarantine_entry,
)

log = logging.getLogger(__name__)

MAX_CHUNKS = 128
"""Mapped chunks per run, well under Airflow's default `[core] max_map_length` (1024 in 3.x, 256 set here)."""


def s3_client(settings: Settings) -> Any:
    """The S3 client of the configured Airflow connection (endpoint and keys come from the launcher)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=settings.storage.aws_conn_id).get_conn()


def chunked(
    items: list[dict[str, Any]], size: int, max_chunks: int = MAX_CHUNKS
) -> list[list[dict[str, Any]]]:
    """Chunks of at least `size` items, never more than `max_chunks` of them."""
    if not items:
        return []
    size = max(size, math.ceil(len(items) / max_chunks))
    return [items[start : start + size] for start in range(0, len(items), size)]


def chunk_label(chunk: list[dict[str, Any]]) -> str:
    """The mapped task's name in the UI: the first key, and how many more."""
    first = str(chunk[0].get("landing", chunk[0]).get("key", "?")) if chunk else "-"
    return first if len(chunk) == 1 else f"{first} +{len(chunk) - 1}"


def landed_chunks(pipeline: str, events: Iterable[Any], run_id: str) -> list[list[dict[str, Any]]]:
    """Every landing the triggering events report, verified and deduplicated, in chunks.

    Events that were not raised by the watcher are refused: recorded under the quarantine prefix and
    alerted, and nothing they name is read, moved or deleted. Each batch a genuine event reported is
    claimed, so the watcher knows a run received it (see the watcher's re-queue).
    """
    from airflow.sdk.exceptions import AirflowFailException

    settings = get_settings(pipeline)
    key, s3, alerts = signing_key(), s3_client(settings), Alerts(settings.notify.webhook_url)
    landings: dict[tuple[str, str], Landing] = {}
    batches, forged = [], []
    for event in events:
        try:
            batch, found = verified_batch(key, event.extra, pipeline)
        except ForgedEvent as refused:
            forged.append(_record_forged(s3, settings, event, str(refused), alerts))
            continue
        batches.append(batch)
        for landing in found:
            landings.setdefault(landing.identity, landing)
    for batch in batches:
        s3ops.put_json(
            s3,
            settings.storage.datasets_bucket,
            batch_claim(settings.storage.ledger_prefix, batch),
            {"run_id": run_id},
        )
    if not landings:
        raise AirflowFailException(
            f"{len(forged)} asset event(s) of this run were not raised by the landing watcher and were "
            "refused; "
            f"nothing was read, moved or deleted (records: {', '.join(forged)})"
            if forged
            else "this run's landing events carry no objects; see the triggerer log"
        )
    log.info(
        "%d landing(s) in %d batch(es); %d forged event(s) refused", len(landings), len(batches), len(forged)
    )
    payloads = [landing.as_payload() for landing in landings.values()]
    return chunked(payloads, settings.ingest.chunk_size)


def _record_forged(s3: Any, settings: Settings, event: Any, reason: str, alerts: Alerts) -> str:
    """Keep a forged event's content as evidence beside the quarantined files, and alert."""
    extra = json.dumps(dict(event.extra or {}), sort_keys=True, default=str)
    digest = hashlib.sha256(extra.encode()).hexdigest()[:32]
    key = f"{settings.storage.quarantine_prefix}/forged-events/{digest}.json"
    record = {
        "reason": reason,
        "timestamp": str(getattr(event, "timestamp", "")),
        "source_dag_id": getattr(event, "source_dag_id", None),
        "extra": extra[:100_000],
        "what_to_do": "find who posted it (the api-server's audit log names the user); nothing was acted on",
    }
    s3ops.put_json(s3, settings.storage.datasets_bucket, key, record)
    uri = f"s3://{settings.storage.datasets_bucket}/{key}"
    alerts.send(
        "forged_event", f"Refused a landing event not raised by the watcher: {reason}", {"record": uri}
    )
    return uri


def landing_of_partition(pipeline: str, partition: str | None) -> list[list[dict[str, Any]]]:
    """The landing of one day, for a run no landing event started: a backfill run
    (`airflow backfill create`) or the daily catch-up run."""
    from datetime import date

    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    if not partition:
        raise AirflowFailException(
            "this run has neither landing events nor a day; start ingest by landing a file, or re-process "
            f"days with `airflow backfill create --dag-id {get_settings(pipeline).names.ingest_dag} "
            "--from-date ... --to-date ...`"
        )
    try:
        day = date.fromisoformat(partition)
    except ValueError:
        raise AirflowFailException(f"partition key {partition!r} is not a YYYY-MM-DD date") from None
    settings = get_settings(pipeline)
    storage, s3 = settings.storage, s3_client(settings)
    landings = day_landings(s3, storage, day)
    if not landings:
        raise AirflowSkipException(
            f"nothing landed for {partition}: no {storage.landing_filename} or {storage.landing_marker} "
            f"under s3://{storage.datasets_bucket}/{landing_folder(storage, day)} (nor in its hour folders)"
        )
    log.info("Re-processing the landings of %s: %s", partition, [landing.key for landing in landings])
    return [[landing.as_payload() for landing in landings]]


def day_landings(s3: Any, storage: Any, day: Any) -> list[Landing]:
    """What re-processes a day: its one file, or else its marker (which covers its parts); or, for a
    day landed hour by hour, the file or marker of each hour."""
    found: dict[tuple[str | None, str], Landing] = {}
    for obj in s3ops.list_keys(s3, storage.datasets_bucket, landing_folder(storage, day)):
        try:
            parsed = parse_landing_key(obj["Key"], storage)
        except RejectedKey:
            continue
        if parsed.kind != "part":
            landing = Landing.from_listing(storage.datasets_bucket, storage.landing_prefix, obj)
            found[(parsed.hour, parsed.kind)] = landing
    chosen = []
    for hour in sorted({hour for hour, _ in found}, key=lambda h: h or ""):
        # A one-file landing and a marker in the same folder: the newer one is the current version.
        candidates = [found[key] for key in ((hour, "file"), (hour, "marker")) if key in found]
        chosen.append(max(candidates, key=lambda landing: landing.last_modified))
    return chosen


def examine_chunk(pipeline: str, chunk: list[dict[str, Any]], reprocess: bool) -> list[dict[str, Any]]:
    """Validate and stage (or quarantine) each landing of the chunk."""
    settings = get_settings(pipeline)
    s3 = s3_client(settings)
    outcomes = []
    for payload in chunk:
        landing = Landing.from_payload(payload)
        try:
            outcome = examine(s3, settings, landing, reprocess)
        except IngestError as error:
            if "is gone" not in str(error):
                raise
            # Deleted by someone before it was processed: report it, do not block the rest of the chunk.
            outcome = Outcome(
                "rejected",
                payload,
                landing.partition_date,
                problems=[{"code": "missing", "detail": str(error), "column": None}],
            )
        log.info("%s: %s", landing.key, outcome.status)
        outcomes.append(outcome.as_dict())
    return outcomes


def publish_chunk(
    pipeline: str, outcomes: list[dict[str, Any]], outlet: Any, run_id: str, reprocess: bool
) -> dict[str, Any]:
    """Publish each staged landing's partition: one `raw_daily` event per partition whose head it became."""
    from airflow.sdk.exceptions import AirflowSkipException

    settings = get_settings(pipeline)
    s3, storage = s3_client(settings), settings.storage
    published: dict[str, dict[str, Any]] = {}
    for outcome in map(Outcome.from_dict, outcomes):
        if outcome.status != "ingested" or not claim_outcome(s3, storage, outcome, run_id, reprocess):
            continue
        head = advance_head(s3, storage, outcome, run_id)
        if head is None or head["version"] != outcome.version:
            mark_superseded(s3, storage, outcome, head["version"] if head else "a newer landing")
            continue
        # A backfill's partitions are trained each on its own window, in order (never coalesced).
        published[outcome.partition] = {**head, "backfill": reprocess}
    if not published:
        raise AirflowSkipException("no landing of this chunk became a raw partition (see the log for each)")
    outlet.add_partitions(sorted(published))
    outlet.extra = {"partitions": published}
    log.info("Published raw partitions %s", sorted(published))
    return {"partitions": sorted(published)}


def report_chunk(
    pipeline: str, outcomes: list[dict[str, Any]], outlet: Any, run_id: str, reprocess: bool
) -> dict[str, Any]:
    """One `quarantine` event (and one alert) for the chunk's quarantined and refused landings."""
    from airflow.sdk.exceptions import AirflowSkipException

    settings = get_settings(pipeline)
    s3, storage = s3_client(settings), settings.storage
    quarantined, rejected = [], []
    for outcome in map(Outcome.from_dict, outcomes):
        if outcome.status == "quarantined" and claim_outcome(s3, storage, outcome, run_id, reprocess):
            quarantined.append(quarantine_entry(outcome))
        elif outcome.status == "rejected":
            rejected.append(quarantine_entry(outcome))
    if not quarantined and not rejected:
        raise AirflowSkipException("nothing of this chunk was quarantined or refused")
    outlet.extra = {"quarantined": quarantined, "rejected": rejected}
    lines = [
        f"{entry['source_key']!r} ({', '.join(sorted({p['code'] for p in entry['problems']}))})"
        for entry in [*quarantined, *rejected]
    ]
    Alerts(settings.notify.webhook_url).send(
        "quarantine",
        f"Rejected {len(lines)} landing(s): {'; '.join(lines[:10])}" + (" ..." if len(lines) > 10 else ""),
        {"quarantined": len(quarantined), "rejected": len(rejected), "run_id": run_id},
    )
    return {"quarantined": len(quarantined), "rejected": len(rejected)}
