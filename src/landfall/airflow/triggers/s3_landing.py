"""S3 landing watcher: every new landing under a pipeline's landing prefix is reported, and its ingest run
happens.

How "exactly once" is kept, across bursts, triggerer restarts and many pipelines:

* The trigger is a shared-stream `BaseEventTrigger` in **ack mode** (`airflow.triggers.shared_stream`). A
  `LandingProducer` (`landing_stream`) polls every `poll_interval_s` seconds and fires **one event per
  pipeline per poll** carrying its new landings (at most `max_objects_per_event`; the rest wait for the
  next poll). Its settings travel as one `LandingWatch` (`landing_watch`), which is also the shared-stream
  key: every pipeline's trigger carries the same watch, so one stream (one client, one loop, one queue)
  serves them all, and each pipeline's trigger fires only the events of its own pipeline.
* Every trigger sees every event. A trigger *rejects* another pipeline's event rather than skipping it,
  so an event counts as persisted only when its own pipeline's trigger acknowledged it; an event sent
  while that trigger was not following the stream (a restart, another triggerer) is reported again.
  Several events back to back would strand work: Airflow 3.3 queues an asset-triggered run with one row
  per (asset, DAG) stamped with the first event's time, and events persisted before the scheduler
  consumes that row wait for some later event.
* What a poll costs does not grow with history (`landing_scan`): it lists the folders that can change,
  and a reconciliation sweep lists everything every `reconcile_interval_s`.
* Airflow calls `advance()` only after the event is *persisted in the metadata database*; only then is the
  landing recorded in its folder's manifest (`<ledger>/folders/<day>.json`) and a batch record
  (`<ledger>/batches/<batch>.json`) written. A landing whose event was not confirmed is not recorded, so
  the next poll - in this process or after a restart - reports it again. A manifest PUT that fails is
  retried on the next poll; the landing is not reported again by this process meanwhile. Manifests are
  written compare-and-set and merged on conflict (`landing_manifests`): a second watcher (a zombie
  triggerer) cannot overwrite the records of another.
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
  failing the trigger during a long poll interval or an S3 outage, and every S3 call is bounded to a
  quarter of that timeout (`aws_clients`): a hung call fails the poll, which is retried.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from airflow.triggers.shared_stream import reject_shared_stream_event

from landfall.airflow.triggers.landing_stream import SUBSCRIPTIONS, TICK, LandingProducer
from landfall.airflow.triggers.landing_watch import LandingWatch, WatchedPrefix
from landfall.pipeline.landing import EVENT_TYPE

__all__ = ["TICK", "LandingProducer", "LandingWatch", "S3LandingTrigger", "WatchedPrefix"]


class S3LandingTrigger(BaseEventTrigger):
    """Fires one `TriggerEvent` per poll that found new (or stranded) landings of its pipeline.

    `watch` is the `LandingWatch` of every pipeline (or the JSON of one, as the triggerer passes it back):
    the same in every pipeline's trigger, so all of them share one stream. `pipeline` says whose events
    this trigger fires; it may be left out when the watch has one pipeline."""

    def __init__(self, *, watch: LandingWatch | dict[str, Any], pipeline: str | None = None) -> None:
        super().__init__()
        self.watch = watch if isinstance(watch, LandingWatch) else LandingWatch.model_validate(watch)
        if pipeline is None:
            if len(self.watch.prefixes) != 1:
                raise ValueError("a watch of several pipelines needs the trigger's pipeline")
            pipeline = self.watch.prefixes[0].pipeline
        self.watch.of(pipeline)  # KeyError: not one of the watched pipelines
        self.pipeline = pipeline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {"watch": self.watch.as_kwargs(), "pipeline": self.pipeline}
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    def shared_stream_key(self) -> tuple[str, str]:
        return self.watch.stream_key()  # the pipeline is left out: every pipeline shares the stream

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> LandingProducer:
        watch = LandingWatch.model_validate(kwargs["watch"])
        key = watch.stream_key()
        return LandingProducer(watch, followed=SUBSCRIPTIONS.of(key), key=key)

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        with SUBSCRIPTIONS.following(self.shared_stream_key(), self.pipeline):
            async for raw in shared_stream:
                if raw.get("type") != EVENT_TYPE:
                    continue
                if raw.get("pipeline", self.pipeline) != self.pipeline:
                    # Another pipeline's event. Rejected, not skipped: a skip counts as an ack, and the
                    # producer takes an ack as the owner's (`landing_stream.persisted`).
                    reject_shared_stream_event()
                    continue
                yield TriggerEvent(raw)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # The triggerer always drives this trigger through its shared stream (shared_stream_key is set).
        raise RuntimeError("S3LandingTrigger runs only as a shared stream in the Airflow triggerer")
        yield  # pragma: no cover
