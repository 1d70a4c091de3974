"""The landing watcher's shared stream: polls, one signed event per poll, and what happens on `advance()`.

See `landfall.airflow.triggers.s3_landing` for the exactly-once contract this keeps.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer

from landfall.airflow.triggers.aws_clients import bounded_client
from landfall.airflow.triggers.landing_scan import LandingScanner, ScanStats
from landfall.airflow.triggers.landing_watch import LandingWatch
from landfall.airflow.triggers.notifications import Notification, NotificationQueue, queue_for
from landfall.pipeline.keys import batch_claim, batch_record, batches_prefix
from landfall.pipeline.landing import Landing, landed_event, signing_key

log = logging.getLogger(__name__)

TICK = {"type": "tick"}
HEARTBEAT_S = 30.0
"""Longest gap between two items of the stream: far below the shared-stream ack timeout (300 s)."""
STATS_S = 60.0
"""How often the watcher logs what its polls and sweeps cost (`Watcher stats {...}`)."""
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
    """What one event carries to `advance()`: its landings and the stranded batches it re-reports."""

    batch: str
    landings: list[Landing]
    replaces: list[str] = field(default_factory=list)
    tokens: list[Any] = field(default_factory=list)  # queue mode: the messages acknowledged once persisted


class LandingProducer(SharedStreamProducer):
    """Finds unreported landings (`LandingScanner`), reports them, records them once Airflow persisted."""

    def __init__(self, watch: LandingWatch) -> None:
        self.watch, self.knobs = watch, watch.knobs
        self.bucket, self.prefix, self.ledger = watch.bucket, watch.prefix, watch.ledger_prefix
        self.queue_url = watch.queue_url  # queue mode: bucket notifications say which folder to look at
        self.scanner = LandingScanner(
            self.bucket,
            self.prefix,
            self.ledger,
            watch.parts(),
            self.knobs.open_days,
            self.knobs.ledger_retention_days * 86400,
        )
        self._in_flight: set[tuple[str, str]] = set()
        self._awaiting: dict[str, Batch] = {}
        self._client: Any = None
        self._key: bytes = b""
        self._started = False  # batch records read and the first sweep done, once per stream
        self._queue: NotificationQueue | None = None

    async def _connect(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return await bounded_client(S3Hook, self.watch.aws_conn_id)  # no call outlasts the ack timeout

    async def _list(self, client: Any, prefix: str) -> AsyncIterator[dict[str, Any]]:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj

    async def unreported(self, client: Any, notified: list[str] | None = None) -> list[Landing]:
        """Landings not reported yet and not on their way, oldest first: in list mode from the folders
        that can change, in queue mode from the folders of the notified keys."""
        found = await (
            self.scanner.poll(client) if notified is None else self.scanner.look_at(client, notified)
        )
        # Both checks after the scan, with no await between them: `advance()` records a landing and only
        # then takes it out of flight, so one of the two always holds for a landing reported already.
        fresh = [
            landing
            for landing in found
            if landing.identity not in self._in_flight and not self.scanner.recorded(landing)
        ]
        fresh.sort(key=lambda landing: (landing.last_modified, landing.key))
        return fresh

    async def _load_awaiting(self, client: Any) -> None:
        """Batches an earlier triggerer persisted but saw no claim for: watched again from now."""
        async for obj in self._list(client, batches_prefix(self.ledger)):
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
                "Watching %d batch(es) persisted before this start for their ingest runs", len(self._awaiting)
            )

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
            if await self._exists(client, batch_claim(self.ledger, batch)):
                del self._awaiting[batch]
                await self._delete(client, batch_record(self.ledger, batch))
                await self._delete(client, batch_claim(self.ledger, batch))
            else:
                due.append((batch, entry))
        return due

    async def _exists(self, client: Any, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            await client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise

    async def _delete(self, client: Any, key: str) -> None:
        try:
            await client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as error:  # housekeeping only
            log.warning("Could not delete s3://%s/%s: %s", self.bucket, key, error)

    async def _poll(self, client: Any, notes: list[Notification] | None = None) -> list[Report]:
        """What this poll reports: one report with the new landings and any stranded batches."""
        await self.scanner.flush(client)
        stranded = await self._stranded(client)
        found = await self.unreported(client, None if notes is None else [n.key for n in notes if n.key])
        fresh, later = found[: self.knobs.max_objects_per_event], found[self.knobs.max_objects_per_event :]
        self.scanner.report_again(later)  # the next poll's event carries them
        tokens = [note.token for note in notes or []]
        if not stranded and not fresh:
            if tokens and self._queue is not None:
                await self._queue.ack(tokens)  # nothing new in what they named: nothing to persist
            return []
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
        return [Report(uuid.uuid4().hex, list(landings.values()), replaced, tokens)]

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        self._key = signing_key()
        async with await self._connect() as client:
            self._client = client
            self.scanner.attach(client)
            sweeper: asyncio.Task[None] | None = None
            failures, stats_due = 0, time.monotonic() + STATS_S
            try:
                while True:
                    notes: list[Notification] | None = None
                    try:
                        if not self._started:
                            await self._load_awaiting(client)
                            await self.scanner.load_legacy(client)
                            await self._sweep(client)  # landings made while no watcher ran, anywhere
                            self._started = True
                        if sweeper is None:
                            sweeper = asyncio.create_task(self._sweep_every_interval(client))
                        if self.queue_url:
                            notes = await self._notifications(self.knobs.max_objects_per_event)
                        reports = await self._poll(client, notes)
                        failures = 0
                    except Exception as error:  # S3 down or throttling: keep watching, back off, never crash
                        if notes:  # delivered again (here or to another triggerer), not held unacked
                            await self._release_quietly([note.token for note in notes])
                        failures += 1
                        delay = min(self.knobs.poll_interval_s * 2**failures, 60.0)
                        log.warning(
                            "Polling s3://%s/%s failed (%s); retrying in %.0fs",
                            self.bucket,
                            self.prefix,
                            error,
                            delay,
                        )
                        async for tick in self._ticks(delay):
                            yield tick
                        continue
                    for report in reports:
                        yield landed_event(self._key, self.bucket, report.batch, report.landings), report
                    # A subscriber resolves an event when it pulls the next one; the tick lets the last
                    # event of a poll be acknowledged without waiting for the next landing.
                    yield TICK, None
                    if time.monotonic() >= stats_due:
                        log.info("Watcher stats %s", self.scanner.stats.line())
                        self.scanner.stats = ScanStats()
                        stats_due = time.monotonic() + STATS_S
                    if not self.queue_url:  # queue mode waits in receive() instead
                        async for tick in self._ticks(self.knobs.poll_interval_s):
                            yield tick
            finally:
                if sweeper is not None:
                    sweeper.cancel()
                if self._queue is not None:
                    await self._queue.close()
                    self._queue = None

    async def _release_quietly(self, tokens: list[Any]) -> None:
        try:
            if self._queue is not None:
                await self._queue.release(tokens)
        except Exception as error:  # the broker redelivers unacknowledged messages on reconnect anyway
            log.warning("Could not release %d notification(s): %s", len(tokens), error)

    async def _notifications(self, most: int) -> list[Notification]:
        """Queue mode: the next notifications, waiting at most a poll interval (then the loop checks for
        stranded batches and the sweep's findings, as a poll would)."""
        if self._queue is None:
            queue = queue_for(self.queue_url or "", self.bucket, self.watch.aws_conn_id)
            await queue.open()
            self._queue = queue
            log.info("Watching bucket notifications from %s", self.queue_url)
        return await self._queue.receive(min(self.knobs.poll_interval_s, HEARTBEAT_S), most)

    async def _sweep(self, client: Any) -> None:
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

    async def _sweep_every_interval(self, client: Any) -> None:
        while True:
            await asyncio.sleep(self.knobs.reconcile_interval_s)
            try:
                await self._sweep(client)
            except Exception as error:  # the next sweep tries again; polls go on meanwhile
                log.warning("Reconciliation sweep of s3://%s/%s failed: %s", self.bucket, self.prefix, error)

    @staticmethod
    async def _ticks(seconds: float) -> AsyncIterator[tuple[dict[str, str], None]]:
        """Sleep `seconds`, yielding a heartbeat tick at least every HEARTBEAT_S."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, HEARTBEAT_S))
            if deadline - time.monotonic() > 0:
                yield TICK, None

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        # Never raises: an exception here would end the whole stream and re-report every open event.
        for item in batch:
            report = item.broker_payload
            if not isinstance(report, Report):
                continue
            try:
                if item.outcome.is_clean:
                    await self._persisted(report)
                else:
                    await self._not_persisted(report, item.outcome)
            except Exception as error:
                log.exception(
                    "Recording batch %s failed (%s); its landings stay acknowledged", report.batch, error
                )

    async def _not_persisted(self, report: Report, outcome: Any) -> None:
        log.warning(
            "Batch %s was not confirmed (%s); its landings will be reported again", report.batch, outcome
        )
        for landing in report.landings:
            self._in_flight.discard(landing.identity)
        self.scanner.report_again(report.landings)
        if report.tokens and self._queue is not None:
            await self._queue.release(report.tokens)  # delivered again, here or to another triggerer
        for old in report.replaces:
            if old in self._awaiting:
                self._awaiting[old].requeued = False

    async def _persisted(self, report: Report) -> None:
        attempts = 1 + max(
            (self._awaiting[old].attempts for old in report.replaces if old in self._awaiting), default=-1
        )
        record = {
            "batch": report.batch,
            "landings": [landing.as_payload() for landing in report.landings],
            "attempts": attempts,
            "persisted_at": datetime.now(UTC).isoformat(),
        }
        try:
            await self._client.put_object(
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
            await self._delete(self._client, batch_record(self.ledger, old))
        self.scanner.record(report.landings)
        for landing in report.landings:
            self._in_flight.discard(landing.identity)
        await self.scanner.flush(self._client)
        if report.tokens and self._queue is not None:
            await self._queue.ack(report.tokens)  # only now: the event is persisted and recorded
