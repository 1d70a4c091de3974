"""One pipeline's half of the landing stream: what was found under its prefix, what is on its way to
Airflow, and which persisted batches still await their ingest run's claim.

`LandingProducer` (`landing_stream`) owns the S3 client, the queue and the poll loop, and holds one
`PrefixWatcher` per pipeline. Everything here acts on one pipeline's prefix and ledger, so nothing one
pipeline reports, records or re-queues touches another's.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from landfall.airflow.triggers.landing_scan import LandingScanner
from landfall.airflow.triggers.landing_watch import WatchedPrefix
from landfall.core.shared_settings import WatcherSettings
from landfall.pipeline.keys import batch_claim, batch_record, batches_prefix
from landfall.pipeline.landing import Landing

log = logging.getLogger(__name__)

_CLAIM_CHECKS_PER_POLL = 200


@dataclass
class Batch:
    """A persisted batch awaiting its ingest run's claim."""

    landings: list[Landing]
    persisted_at: float
    attempts: int = 0
    requeued: bool = False  # re-reported, waiting for that report to be persisted


@dataclass
class Report:
    """What one event carries to `advance()`: its pipeline, its landings and the stranded batches it
    re-reports."""

    pipeline: str
    batch: str
    landings: list[Landing]
    replaces: list[str] = field(default_factory=list)
    tokens: list[Any] = field(default_factory=list)  # queue mode: the messages acknowledged once persisted
    # The watcher that reported it: its answer is recorded there even if the pipeline's trigger left
    # meanwhile and a fresh watcher took its place (whose in-flight set it must not touch).
    source: PrefixWatcher | None = field(default=None, repr=False, compare=False)


class PrefixWatcher:
    """Finds one pipeline's unreported landings (`LandingScanner`) and records them once persisted."""

    def __init__(self, bucket: str, watched: WatchedPrefix, knobs: WatcherSettings) -> None:
        self.bucket, self.watched, self.knobs = bucket, watched, knobs
        self.pipeline, self.prefix, self.ledger = watched.pipeline, watched.prefix, watched.ledger_prefix
        self.scanner = LandingScanner(
            bucket,
            self.prefix,
            self.ledger,
            watched.parts(),
            knobs.open_days,
            knobs.ledger_retention_days * 86400,
        )
        self._in_flight: set[tuple[str, str]] = set()
        self._awaiting: dict[str, Batch] = {}
        self.started = False  # batch records read and the first sweep done

    async def start(self, client: Any) -> None:
        """Batches an earlier triggerer persisted but saw no claim for, the legacy ledger, and one sweep
        for landings made while no watcher ran."""
        with self.scanner.counting():
            await self._load_awaiting(client)
            await self.scanner.load_legacy(client)
        await self.sweep(client)
        self.started = True

    async def _load_awaiting(self, client: Any) -> None:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=batches_prefix(self.ledger)):
            for obj in page.get("Contents", []):
                batch = obj["Key"].rsplit("/", 1)[-1].removesuffix(".json")
                try:
                    body = await client.get_object(Bucket=self.bucket, Key=obj["Key"])
                    record = json.loads(await body["Body"].read())
                    landings = [Landing.from_payload(p) for p in record["landings"]]
                except Exception as error:  # a broken record must not stop the watcher
                    log.warning("Ignoring unreadable batch record %s: %s", obj["Key"], error)
                    continue
                self._awaiting[batch] = Batch(landings, time.monotonic(), int(record.get("attempts", 0)))
                self.scanner.record(landings)  # persisted by Airflow before that triggerer stopped
        if self._awaiting:
            log.info(
                "%s: watching %d batch(es) persisted before this start for their ingest runs",
                self.pipeline,
                len(self._awaiting),
            )

    async def sweep(self, client: Any) -> None:
        with self.scanner.counting():
            await self.scanner.sweep(client)
        stats = self.scanner.stats
        log.info(
            "Reconciliation sweep of s3://%s/%s/: %d object(s) in %d folder(s), %d request(s), %.1fs, "
            "%.2f CPU s; %d folder(s) compacted so far",
            self.bucket,
            self.prefix,
            stats.swept_objects,
            stats.swept_folders,
            stats.sweep_requests,
            stats.sweep_s,
            stats.sweep_cpu_s,
            stats.compacted,
        )

    async def unreported(self, client: Any, notified: list[str] | None = None) -> list[Landing]:
        """Landings not reported yet and not on their way, oldest first: in list mode from the folders
        that can change, in queue mode from the folders of the notified keys."""
        found = await (
            self.scanner.poll(client) if notified is None else self.scanner.look_at(client, notified)
        )
        # Both checks after the scan, with no await between them: `persisted()` records a landing and
        # only then takes it out of flight, so one of the two always holds for a landing reported already.
        fresh = [
            landing
            for landing in found
            if landing.identity not in self._in_flight and not self.scanner.recorded(landing)
        ]
        fresh.sort(key=lambda landing: (landing.last_modified, landing.key))
        return fresh

    async def _stranded(self, client: Any) -> list[tuple[str, Batch]]:
        """Batches whose claim is overdue: no ingest run received them."""
        now, due = time.monotonic(), []
        checked = 0
        for batch, entry in list(self._awaiting.items()):
            if entry.requeued or now - entry.persisted_at < self.knobs.requeue_after_s * 2**entry.attempts:
                continue
            if checked >= _CLAIM_CHECKS_PER_POLL:
                break
            checked += 1
            if await _exists(client, self.bucket, batch_claim(self.ledger, batch)):
                del self._awaiting[batch]
                await _delete(client, self.bucket, batch_record(self.ledger, batch))
                await _delete(client, self.bucket, batch_claim(self.ledger, batch))
            else:
                due.append((batch, entry))
        return due

    async def poll(self, client: Any, notified: list[str] | None, tokens: list[Any]) -> Report | None:
        """What this poll reports for the pipeline: its new landings and any stranded batches, or None.
        `notified`: queue mode's keys (None in list mode); `tokens`: their messages, which the report
        carries to be acknowledged once persisted."""
        with self.scanner.counting():
            await self.scanner.flush(client)
            stranded = await self._stranded(client)
            found = await self.unreported(client, notified)
        most = self.knobs.max_objects_per_event
        fresh, later = found[:most], found[most:]
        self.scanner.report_again(later)  # the next poll's event carries them
        if not stranded and not fresh:
            return None
        landings = {landing.identity: landing for landing in fresh}
        for batch, entry in stranded:
            entry.requeued = True
            log.warning(
                "Batch %s (%d landing(s)) was not received by an ingest run within %.0fs: reporting it again",
                batch,
                len(entry.landings),
                self.knobs.requeue_after_s * 2**entry.attempts,
            )
            for landing in entry.landings:
                landings.setdefault(landing.identity, landing)
        for landing in fresh:
            self._in_flight.add(landing.identity)
            log.info("New landing s3://%s/%s (version %s)", self.bucket, landing.key, landing.version)
        replaced = [batch for batch, _ in stranded]
        return Report(self.pipeline, uuid.uuid4().hex, list(landings.values()), replaced, tokens, self)

    async def leave(self, client: Any) -> None:
        """The pipeline's trigger left this triggerer: write what the ledger still owes, stop counting."""
        try:
            with self.scanner.counting():
                await self.scanner.flush(client)
        except Exception as error:  # the next watcher of the pipeline starts with a sweep anyway
            log.warning("%s: ledger not flushed on leaving (%s)", self.pipeline, error)
        self.scanner.detach(client)

    def not_persisted(self, report: Report, outcome: Any) -> None:
        log.warning(
            "Batch %s of %s was not confirmed (%s); its landings will be reported again",
            report.batch,
            self.pipeline,
            outcome,
        )
        for landing in report.landings:
            self._in_flight.discard(landing.identity)
        self.scanner.report_again(report.landings)
        for old in report.replaces:
            if old in self._awaiting:
                self._awaiting[old].requeued = False

    async def persisted(self, client: Any, report: Report) -> None:
        with self.scanner.counting():
            await self._persisted(client, report)

    async def _persisted(self, client: Any, report: Report) -> None:
        attempts = 1 + max(
            (self._awaiting[old].attempts for old in report.replaces if old in self._awaiting), default=-1
        )
        record = {
            "batch": report.batch,
            "pipeline": self.pipeline,
            "landings": [landing.as_payload() for landing in report.landings],
            "attempts": attempts,
            "persisted_at": datetime.now(UTC).isoformat(),
        }
        try:
            await client.put_object(
                Bucket=self.bucket,
                Key=batch_record(self.ledger, report.batch),
                Body=json.dumps(record).encode(),
                ContentType="application/json",
            )
        except Exception as error:
            log.warning("Batch record %s not written (%s): watched in memory only", report.batch, error)
        self._awaiting[report.batch] = Batch(report.landings, time.monotonic(), attempts)
        for old in report.replaces:
            self._awaiting.pop(old, None)
            await _delete(client, self.bucket, batch_record(self.ledger, old))
        self.scanner.record(report.landings)
        for landing in report.landings:
            self._in_flight.discard(landing.identity)
        await self.scanner.flush(client)


async def _exists(client: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        await client.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as error:
        if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return False
        raise


async def _delete(client: Any, bucket: str, key: str) -> None:
    try:
        await client.delete_object(Bucket=bucket, Key=key)
    except Exception as error:  # housekeeping only
        log.warning("Could not delete s3://%s/%s: %s", bucket, key, error)
