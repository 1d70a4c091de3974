"""S3 landing watcher: every new object under the landing prefix is reported in exactly one asset event.

One event per poll carries every object that poll found (up to `MAX_OBJECTS_PER_EVENT`). One event per
object would lose work in a burst: Airflow 3.3 queues an asset-triggered run with one row per
(asset, DAG) stamped with the *first* event's time, the scheduler consumes events up to that stamp and
deletes the row, so events persisted in between wait for a later landing that may never come (the
benchmark's burst of 50 found 49 such events). A poll's objects in one event are one run, mapped.

How "exactly once" is kept, across triggerer restarts too:

* The trigger is a shared-stream `BaseEventTrigger` in **ack mode** (see `airflow.triggers.shared_stream`).
  A `LandingProducer` lists the landing prefix every `poll_interval` seconds and yields the objects that
  have no ledger marker yet. Airflow calls `LandingProducer.advance()` only after the asset event
  is *persisted in the metadata database*; only then is a marker written for each of its objects to
  `s3://<bucket>/<ledger_prefix>/<sha256(key)>/<etag>`.
* An object whose event was not confirmed (triggerer killed, DB blip, ack timeout) has no marker, so the
  next poll - in this process or after a restart - reports it again: nothing is lost.
* The one remaining window (event persisted, triggerer killed before the marker is written) can only
  repeat an event, never lose one; the ingest DAG is idempotent on (key, etag) for that case.
* Objects that landed while the triggerer was down have no marker either, so the first poll after
  start-up reports them: the ledger, not a timestamp watermark, decides what is new.

A re-uploaded object with new content has a new ETag and is reported again, which is what a user who
re-lands a corrected file expects.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome, SharedStreamProducer

from landfall.keys import key_digest

log = logging.getLogger(__name__)

TICK = {"type": "tick"}
# One event stays well under [core] max_map_length (256) and keeps its extra small in the metadata DB.
MAX_OBJECTS_PER_EVENT = 100
_DATE_SEGMENT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")  # ASCII digits only


def partition_of(key: str, prefix: str) -> str | None:
    """The YYYY-MM-DD folder of `<prefix>/<date>/<file>`, or None; the ingest DAG does the strict check."""
    rest = key[len(prefix) + 1 :] if key.startswith(prefix + "/") else ""
    first = rest.split("/", 1)[0]
    return first if _DATE_SEGMENT.match(first) else None


def landing_payload(bucket: str, prefix: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The asset-event payload for one listed S3 object (JSON only: it is stored in the metadata DB)."""
    modified = obj.get("LastModified")
    return {
        "type": "landed",
        "bucket": bucket,
        "key": obj["Key"],
        "size": int(obj.get("Size", 0)),
        "etag": str(obj.get("ETag", "")).strip('"'),
        "last_modified": modified.isoformat() if isinstance(modified, datetime) else None,
        "partition_date": partition_of(obj["Key"], prefix),
    }


class LandingProducer(SharedStreamProducer):
    """Lists the landing prefix, yields unreported objects, and records them once Airflow persisted them."""

    def __init__(
        self, bucket: str, prefix: str, ledger_prefix: str, aws_conn_id: str | None, poll_interval: float
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.ledger_prefix = ledger_prefix.strip("/")
        self.aws_conn_id = aws_conn_id
        self.poll_interval = poll_interval
        self._in_flight: set[tuple[str, str]] = set()
        # Acknowledged in this process: never yielded again by it, even if a listing of the ledger
        # does not show the new marker yet (the ledger itself covers restarts).
        self._acknowledged: set[tuple[str, str]] = set()
        self._client: Any = None

    async def _connect(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        hook = S3Hook(aws_conn_id=self.aws_conn_id)
        return await hook.get_async_conn()

    async def _list(self, client: Any, prefix: str) -> AsyncIterator[dict[str, Any]]:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix + "/"):
            for obj in page.get("Contents", []):
                yield obj

    async def unreported(self, client: Any) -> list[dict[str, Any]]:
        """Objects under the landing prefix with no ledger marker and not already on their way."""
        reported = set()
        async for marker in self._list(client, self.ledger_prefix):
            digest, _, etag = marker["Key"][len(self.ledger_prefix) + 1 :].partition("/")
            reported.add((digest, etag))
        fresh = []
        async for obj in self._list(client, self.prefix):
            etag = str(obj.get("ETag", "")).strip('"')
            identity = (obj["Key"], etag)
            if (key_digest(obj["Key"]), etag) in reported or identity in self._in_flight | self._acknowledged:
                continue
            fresh.append(obj)
        fresh.sort(key=lambda obj: (obj.get("LastModified") or datetime.min.replace(tzinfo=UTC), obj["Key"]))
        return fresh

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        async with await self._connect() as client:
            self._client = client
            failures = 0
            while True:
                try:
                    fresh = await self.unreported(client)
                    failures = 0
                except Exception as error:  # S3 down or throttling: keep watching, back off, never crash
                    failures += 1
                    delay = min(self.poll_interval * 2**failures, 60.0)
                    log.warning(
                        "Listing s3://%s/%s failed (%s); retrying in %.0fs",
                        self.bucket,
                        self.prefix,
                        error,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                for start in range(0, len(fresh), MAX_OBJECTS_PER_EVENT):
                    objects = [
                        landing_payload(self.bucket, self.prefix, obj)
                        for obj in fresh[start : start + MAX_OBJECTS_PER_EVENT]
                    ]
                    for payload in objects:
                        self._in_flight.add((payload["key"], payload["etag"]))
                        log.info(
                            "New object s3://%s/%s (etag %s)", self.bucket, payload["key"], payload["etag"]
                        )
                    event = {"type": "landed", "bucket": self.bucket, "objects": objects}
                    yield event, objects
                # A subscriber resolves an event when it pulls the next one; the tick lets the last
                # object of a burst be acknowledged without waiting for the next landing.
                yield TICK, None
                await asyncio.sleep(self.poll_interval)

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        for item in batch:
            for payload in item.broker_payload or []:
                await self._advance_one(payload, item.outcome)

    async def _advance_one(self, payload: dict[str, Any], outcome: AdvanceOutcome) -> None:
        identity = (payload["key"], payload["etag"])
        if not outcome.is_clean:
            log.warning(
                "Event for s3://%s/%s not confirmed (%s); it will be reported again",
                self.bucket,
                payload["key"],
                outcome,
            )
            self._in_flight.discard(identity)
            return
        marker = f"{self.ledger_prefix}/{key_digest(payload['key'])}/{payload['etag']}"
        body = {**payload, "reported_at": datetime.now(UTC).isoformat()}
        await self._client.put_object(
            Bucket=self.bucket, Key=marker, Body=json.dumps(body).encode(), ContentType="application/json"
        )
        self._acknowledged.add(identity)
        # Only now: if the marker PUT raised, the object stays in flight rather than being reported
        # again by this process (its event is already persisted; a restart re-reads the ledger).
        self._in_flight.discard(identity)


class S3LandingTrigger(BaseEventTrigger):
    """Fires one `TriggerEvent` per poll that found new objects under `s3://<bucket>/<prefix>/`."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        ledger_prefix: str,
        aws_conn_id: str | None = "aws_default",
        poll_interval: float = 2.0,
    ) -> None:
        super().__init__()
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.ledger_prefix = ledger_prefix.strip("/")
        self.aws_conn_id = aws_conn_id
        self.poll_interval = float(poll_interval)

    def _kwargs(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "ledger_prefix": self.ledger_prefix,
            "aws_conn_id": self.aws_conn_id,
            "poll_interval": self.poll_interval,
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
            if raw.get("type") != "landed":
                continue
            yield TriggerEvent(raw)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # The triggerer always drives this trigger through its shared stream (shared_stream_key is set).
        raise RuntimeError("S3LandingTrigger runs only as a shared stream in the Airflow triggerer")
        yield  # pragma: no cover
