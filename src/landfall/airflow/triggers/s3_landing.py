"""S3 landing watcher: every new landing under the landing prefix is reported, and its ingest run happens.

How "exactly once" is kept, across bursts and triggerer restarts:

* The trigger is a shared-stream `BaseEventTrigger` in **ack mode** (`airflow.triggers.shared_stream`). A
  `LandingProducer` lists the landing prefix every `poll_interval` seconds and fires **one event per poll**
  carrying the new landings (at most `max_objects_per_event`; the rest wait for the next poll). Several
  events back to back would strand work: Airflow 3.3 queues an asset-triggered run with one row per
  (asset, DAG) stamped with the first event's time, and events persisted before the scheduler consumes
  that row wait for some later event.
* Airflow calls `advance()` only after the event is *persisted in the metadata database*; only then are a
  batch record (`<ledger>/batches/<batch>.json`) and one marker per landing
  (`<ledger>/seen/<digest>/<version>`) written. A landing whose event was not confirmed has no marker,
  so the next poll - in this process or after a restart - reports it again. A marker PUT that fails is
  retried on the next poll; the landing is not reported again by this process meanwhile.
* The ingest run that receives a batch writes a claim (`<ledger>/claims/<batch>`). A batch with no claim
  `requeue_after_s` after it was persisted was stranded (the queueing race above): its landings are
  reported again in a new batch, with exponential back-off. Ingest is idempotent per landing, so the
  stranded event, when a later run finally consumes it, changes nothing. Batch records survive a restart.
* Each event is signed (HMAC with `LANDFALL_EVENT_SIGNING_KEY`); ingest refuses events without a valid
  signature, so an event posted through the REST API moves nothing.
* A landing is (key, ETag, Last-Modified): the same bytes PUT again later are a new landing.
* Part files of a multi-part partition are not landings until their marker lands (`PartRule`): the
  marker is reported, and covers them; only a part newer than its folder's marker is reported itself.
* A heartbeat tick at least every `HEARTBEAT_S` keeps the shared stream's ack timeout (300 s) from
  failing the trigger during a long poll interval or an S3 outage.
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

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer

from landfall.pipeline.keys import (
    batch_claim,
    batch_record,
    batches_prefix,
    key_digest,
    seen_marker,
    seen_prefix,
)
from landfall.pipeline.landing import EVENT_TYPE, Landing, PartRule, landed_event, signing_key

log = logging.getLogger(__name__)

TICK = {"type": "tick"}
HEARTBEAT_S = 30.0
"""Longest gap between two items of the stream: far below the shared-stream ack timeout (300 s)."""
_WRITE_CONCURRENCY = 16
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


class LandingProducer(SharedStreamProducer):
    """Lists the landing prefix, reports unreported landings, records them once Airflow persisted them."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        ledger_prefix: str,
        aws_conn_id: str | None,
        poll_interval: float,
        max_objects_per_event: int = 500,
        requeue_after_s: float = 60.0,
        part_glob: str | None = None,
        marker: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.parts = PartRule(part_glob, marker) if part_glob and marker else None
        self.prefix = prefix.strip("/")
        self.ledger = ledger_prefix.strip("/")
        self.aws_conn_id = aws_conn_id
        self.poll_interval = poll_interval
        self.max_objects_per_event = max_objects_per_event
        self.requeue_after_s = requeue_after_s
        self._in_flight: set[tuple[str, str]] = set()
        # Acknowledged in this process: never reported again by it, even if a listing of the ledger does
        # not show the marker yet, or its PUT failed and waits in `_pending_markers`.
        self._acknowledged: set[tuple[str, str]] = set()
        self._pending_markers: dict[str, Landing] = {}
        self._awaiting: dict[str, Batch] = {}
        self._client: Any = None
        self._key: bytes = b""
        self._loaded = False  # the batch records of an earlier triggerer are read once per stream

    async def _connect(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return await S3Hook(aws_conn_id=self.aws_conn_id).get_async_conn()

    async def _list(self, client: Any, prefix: str) -> AsyncIterator[dict[str, Any]]:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj

    async def unreported(self, client: Any) -> list[Landing]:
        """Landings under the landing prefix with no marker, not on their way, oldest first."""
        seen = seen_prefix(self.ledger)
        reported = set()
        async for marker in self._list(client, seen):
            digest, _, version = marker["Key"][len(seen) :].partition("/")
            reported.add((digest, version))
        fresh, listed = [], []
        async for obj in self._list(client, self.prefix + "/"):
            listed.append(Landing.from_listing(self.bucket, self.prefix, obj))
        for landing in self.parts.reportable(listed) if self.parts else listed:
            identity = landing.identity
            if identity in self._in_flight or identity in self._acknowledged:
                continue
            if (key_digest(landing.key), landing.version) in reported:
                continue
            fresh.append(landing)
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
            self._acknowledged.update(landing.identity for landing in landings)
        if self._awaiting:
            log.info(
                "Watching %d batch(es) persisted before this start for their ingest runs", len(self._awaiting)
            )

    async def _stranded(self, client: Any) -> list[tuple[str, Batch]]:
        """Batches whose claim is overdue: no ingest run received them."""
        now, due = time.monotonic(), []
        checked = 0
        for batch, entry in list(self._awaiting.items()):
            if entry.requeued or now - entry.persisted_at < self.requeue_after_s * 2**entry.attempts:
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

    async def _poll(self, client: Any) -> list[Report]:
        """What this poll reports: one report with the new landings and any stranded batches."""
        await self._flush_markers(client)
        stranded = await self._stranded(client)
        fresh = (await self.unreported(client))[: self.max_objects_per_event]
        if not stranded and not fresh:
            return []
        landings = {landing.identity: landing for landing in fresh}
        for batch, entry in stranded:
            entry.requeued = True
            log.warning(
                "Batch %s (%d landing(s)) was not received by an ingest run within %.0fs: reporting it again",
                batch,
                len(entry.landings),
                self.requeue_after_s * 2**entry.attempts,
            )
            for landing in entry.landings:
                landings.setdefault(landing.identity, landing)
        for landing in fresh:
            self._in_flight.add(landing.identity)
            log.info("New landing s3://%s/%s (version %s)", self.bucket, landing.key, landing.version)
        return [Report(uuid.uuid4().hex, list(landings.values()), [batch for batch, _ in stranded])]

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        self._key = signing_key()
        async with await self._connect() as client:
            self._client = client
            failures = 0
            while True:
                try:
                    if not self._loaded:
                        await self._load_awaiting(client)
                        self._loaded = True
                    reports = await self._poll(client)
                    failures = 0
                except Exception as error:  # S3 down or throttling: keep watching, back off, never crash
                    failures += 1
                    delay = min(self.poll_interval * 2**failures, 60.0)
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
                # A subscriber resolves an event when it pulls the next one; the tick lets the last event
                # of a poll be acknowledged without waiting for the next landing.
                yield TICK, None
                async for tick in self._ticks(self.poll_interval):
                    yield tick

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
                    self._not_persisted(report, item.outcome)
            except Exception as error:
                log.exception(
                    "Recording batch %s failed (%s); its landings stay acknowledged", report.batch, error
                )

    def _not_persisted(self, report: Report, outcome: Any) -> None:
        log.warning(
            "Batch %s was not confirmed (%s); its landings will be reported again", report.batch, outcome
        )
        for landing in report.landings:
            self._in_flight.discard(landing.identity)
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
        for landing in report.landings:
            self._acknowledged.add(landing.identity)
            self._in_flight.discard(landing.identity)
            self._pending_markers[seen_marker(self.ledger, landing.key, landing.version)] = landing
        await self._flush_markers(self._client)

    async def _flush_markers(self, client: Any) -> None:
        """Write the pending ledger markers; those that fail stay pending for the next poll."""
        semaphore = asyncio.Semaphore(_WRITE_CONCURRENCY)

        async def write(marker: str, landing: Landing) -> None:
            async with semaphore:
                body = {**landing.as_payload(), "reported_at": datetime.now(UTC).isoformat()}
                await client.put_object(
                    Bucket=self.bucket,
                    Key=marker,
                    Body=json.dumps(body).encode(),
                    ContentType="application/json",
                )
                self._pending_markers.pop(marker, None)

        pending = list(self._pending_markers.items())
        results = await asyncio.gather(*(write(m, landing) for m, landing in pending), return_exceptions=True)
        failed = [result for result in results if isinstance(result, BaseException)]
        if failed:
            log.warning(
                "%d ledger marker(s) not written (%s); retrying on the next poll", len(failed), failed[0]
            )


class S3LandingTrigger(BaseEventTrigger):
    """Fires one `TriggerEvent` per poll that found new (or stranded) landings under `s3://<bucket>/<prefix>/`."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        ledger_prefix: str,
        aws_conn_id: str | None = "aws_default",
        poll_interval: float = 2.0,
        max_objects_per_event: int = 500,
        requeue_after_s: float = 60.0,
        part_glob: str | None = None,
        marker: str | None = None,
    ) -> None:
        super().__init__()
        self.part_glob = part_glob
        self.marker = marker
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.ledger_prefix = ledger_prefix.strip("/")
        self.aws_conn_id = aws_conn_id
        self.poll_interval = float(poll_interval)
        self.max_objects_per_event = int(max_objects_per_event)
        self.requeue_after_s = float(requeue_after_s)

    def _kwargs(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "ledger_prefix": self.ledger_prefix,
            "aws_conn_id": self.aws_conn_id,
            "poll_interval": self.poll_interval,
            "max_objects_per_event": self.max_objects_per_event,
            "requeue_after_s": self.requeue_after_s,
            "part_glob": self.part_glob,
            "marker": self.marker,
        }

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", self._kwargs()

    def shared_stream_key(self) -> tuple[str, ...]:
        return ("landfall-s3-landing", self.bucket, self.prefix, self.ledger_prefix, str(self.aws_conn_id))

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> LandingProducer:
        return LandingProducer(**kwargs)

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        async for raw in shared_stream:
            if raw.get("type") != EVENT_TYPE:
                continue
            yield TriggerEvent(raw)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # The triggerer always drives this trigger through its shared stream (shared_stream_key is set).
        raise RuntimeError("S3LandingTrigger runs only as a shared stream in the Airflow triggerer")
        yield  # pragma: no cover
