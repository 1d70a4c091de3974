"""The landing watcher's shared stream: one poll loop for every pipeline, one signed event per pipeline
per poll that found something, and what happens on `advance()`.

See `landfall.airflow.triggers.s3_landing` for the exactly-once contract this keeps. One `PrefixWatcher`
per pipeline holds that pipeline's state; the producer owns what they share: the S3 client, the queue in
queue mode, the loop, the heartbeat and the reconciliation sweeps.

The producer watches only the pipelines whose triggers follow the stream in this triggerer
(`SUBSCRIPTIONS`): with two triggerers, each polls the prefixes of the triggers it runs, and a pipeline
whose trigger is not here is not reported here. A pipeline whose trigger leaves is forgotten, and is
started afresh (batch records read, one sweep) when it comes back, as a new stream would.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Hashable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome, SharedStreamProducer

from landfall.airflow.triggers.aws_clients import bounded_client
from landfall.airflow.triggers.landing_stats import ScanStats
from landfall.airflow.triggers.landing_watch import LandingWatch
from landfall.airflow.triggers.notifications import Notification, NotificationQueue, queue_for
from landfall.airflow.triggers.prefix_watcher import Batch, PrefixWatcher, Report
from landfall.pipeline.landing import landed_event, signing_key

log = logging.getLogger(__name__)

__all__ = ["SUBSCRIPTIONS", "TICK", "Batch", "LandingProducer", "Report", "persisted"]

TICK = {"type": "tick"}
HEARTBEAT_S = 30.0
"""Longest gap between two items of the stream: far below the shared-stream ack timeout (300 s)."""
STATS_S = 60.0
"""How often the watcher logs what its polls and sweeps cost (`Watcher stats {...}`)."""


def persisted(outcome: AdvanceOutcome) -> bool:
    """Whether the event's own pipeline stored it. Every other pipeline's trigger rejects it
    (`S3LandingTrigger.filter_shared_stream`) or, if it left before pulling it, counts as failed; so an
    ack can only come from the owner, and one ack is the owner's. Another trigger's failure does not undo
    it. No ack: the owner was not following the stream, or did not store the event, and its landings
    are reported again."""
    return outcome.acked > 0


class Subscriptions:
    """Which pipelines' triggers follow each stream in this triggerer process, and a wake-up for the
    stream's producer when that changes (so a pipeline that just subscribed is polled at once)."""

    def __init__(self) -> None:
        self._following: dict[Hashable, Counter[str]] = {}
        self._listeners: dict[Hashable, set[asyncio.Event]] = {}

    @contextmanager
    def following(self, key: Hashable, pipeline: str) -> Iterator[None]:
        self._following.setdefault(key, Counter())[pipeline] += 1
        self._changed(key)
        try:
            yield
        finally:
            counts = self._following[key]
            counts[pipeline] -= 1
            if counts[pipeline] <= 0:
                del counts[pipeline]
            self._changed(key)

    def of(self, key: Hashable) -> Callable[[], Collection[str]]:
        return lambda: set(self._following.get(key, ()))

    @contextmanager
    def listening(self, key: Hashable, changed: asyncio.Event) -> Iterator[None]:
        self._listeners.setdefault(key, set()).add(changed)
        try:
            yield
        finally:
            self._listeners[key].discard(changed)

    def _changed(self, key: Hashable) -> None:
        for event in self._listeners.get(key, ()):
            event.set()


SUBSCRIPTIONS = Subscriptions()


class LandingProducer(SharedStreamProducer):
    """Polls every followed pipeline's prefix, reports new landings, records them once Airflow persisted.

    `followed`: the pipelines to watch now; unset, every pipeline of the watch (a producer driven
    directly, as the tests and the benchmark do)."""

    def __init__(
        self,
        watch: LandingWatch,
        followed: Callable[[], Collection[str]] | None = None,
        key: Hashable | None = None,
    ) -> None:
        self.watch, self.knobs, self.bucket = watch, watch.knobs, watch.bucket
        self.watchers = {w.pipeline: PrefixWatcher(watch.bucket, w, watch.knobs) for w in watch.prefixes}
        self._followed = followed
        self._key = key
        self.queue_url = watch.queue_url  # queue mode: bucket notifications say which folder to look at
        self._client: Any = None
        self._signing_key: bytes = b""
        self._queue: NotificationQueue | None = None
        self._changed: asyncio.Event | None = None

    def watcher(self, pipeline: str | None = None) -> PrefixWatcher:
        """A pipeline's watcher; without a name, the only one."""
        if pipeline is None:
            [only] = self.watchers.values()
            return only
        return self.watchers[pipeline]

    @property
    def scanner(self) -> Any:
        """The only pipeline's scanner (a one-pipeline watch)."""
        return self.watcher().scanner

    async def _connect(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return await bounded_client(S3Hook, self.watch.aws_conn_id)  # no call outlasts the ack timeout

    async def _active(self, client: Any) -> list[PrefixWatcher]:
        """The watchers of the pipelines followed now; one whose trigger left starts afresh next time."""
        followed = None if self._followed is None else self._followed()
        active = []
        for name, watcher in list(self.watchers.items()):
            if followed is None or name in followed:
                active.append(watcher)
            elif watcher.started:
                log.info(
                    "%s: its trigger left this triggerer; no longer watching s3://%s/%s/",
                    name,
                    self.bucket,
                    watcher.prefix,
                )
                await watcher.leave(client)
                fresh = PrefixWatcher(self.bucket, watcher.watched, self.knobs)
                fresh.scanner.attach(client)
                self.watchers[name] = fresh
        return active

    async def _poll(self, client: Any, notes: list[Notification] | None = None) -> list[Report]:
        """One report per followed pipeline that has new landings or stranded batches. In queue mode each
        pipeline looks at the keys notified under its prefix, and its report carries their messages. A
        message naming keys of two pipelines goes with the first one's report; the second still looks at
        its keys, and what it reports stays in this process's memory until persisted.

        Pipelines are polled one by one, each on its own: one that fails (its prefix unreadable, a
        throttled listing) is retried next poll and never costs another its report. When every one
        failed, the poll fails and the loop backs off."""
        reports, taken, failures, held = [], set(), [], []
        active = await self._active(client)
        for watcher in active:
            mine = None if notes is None else [n for n in notes if n.key and watcher.watched.owns(n.key)]
            tokens = []
            for note in mine or []:
                if id(note.token) not in taken:
                    taken.add(id(note.token))
                    tokens.append(note.token)
            try:
                if not watcher.started:
                    await watcher.start(client)
                report = await watcher.poll(client, None if mine is None else [n.key for n in mine], tokens)
            except Exception as error:
                failures.append(error)
                log.warning(
                    "Polling s3://%s/%s/ failed (%s); retrying next poll", self.bucket, watcher.prefix, error
                )
                held.extend(tokens)
                continue
            if report is not None:
                reports.append(report)
            elif tokens:
                await self._ack_quietly(tokens)  # nothing new in what they named: nothing to persist
        if failures and len(failures) == len(active):
            raise failures[0]  # the loop releases every notification of the poll and backs off
        if held:
            await self._release_quietly(held)  # delivered again, not held unacknowledged
        # Keys under no followed pipeline's prefix: a pipeline not here starts with a sweep anyway.
        others = {id(n.token): n.token for n in notes or [] if id(n.token) not in taken}
        if others:
            await self._ack_quietly(list(others.values()))
        return reports

    async def _ack_quietly(self, tokens: list[Any]) -> None:
        """Acknowledge messages that named nothing to report. Never raises: a report built in the same poll
        must reach the stream (its landings are in flight), and an unacknowledged message is delivered
        again and finds nothing new then."""
        try:
            if self._queue is not None:
                await self._queue.ack(tokens)
        except Exception as error:
            log.warning("Could not acknowledge %d notification(s): %s", len(tokens), error)

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        self._signing_key = signing_key()
        self._changed = asyncio.Event()
        async with await self._connect() as client:
            self._client = client
            for watcher in self.watchers.values():
                watcher.scanner.attach(client)
            sweeper = asyncio.create_task(self._sweep_every_interval(client))
            failures, stats_due = 0, time.monotonic() + STATS_S
            try:
                with SUBSCRIPTIONS.listening(self._key, self._changed):
                    while True:
                        self._changed.clear()
                        notes: list[Notification] | None = None
                        try:
                            if self.queue_url:
                                notes = await self._notifications(self.knobs.max_objects_per_event)
                            reports = await self._poll(client, notes)
                            failures = 0
                        except Exception as error:  # S3 down or throttling: keep watching, back off
                            if notes:  # delivered again (here or to another triggerer), not held unacked
                                await self._release_quietly([note.token for note in notes])
                            failures += 1
                            delay = min(self.knobs.poll_interval_s * 2**failures, 60.0)
                            log.warning(
                                "Polling s3://%s/ (%s) failed (%s); retrying in %.0fs",
                                self.bucket,
                                ", ".join(w.prefix for w in self.watchers.values()),
                                error,
                                delay,
                            )
                            async for tick in self._ticks(delay):
                                yield tick
                            continue
                        for report in reports:
                            event = landed_event(
                                self._signing_key, self.bucket, report.batch, report.landings, report.pipeline
                            )
                            yield event, report
                        # A subscriber resolves an event when it pulls the next one; the tick lets the last
                        # event of a poll be acknowledged without waiting for the next landing.
                        yield TICK, None
                        if time.monotonic() >= stats_due:
                            self._log_stats()
                            stats_due = time.monotonic() + STATS_S
                        if not self.queue_url:  # queue mode waits in receive() instead
                            async for tick in self._ticks(self.knobs.poll_interval_s):
                                yield tick
            finally:
                sweeper.cancel()
                if self._queue is not None:
                    await self._queue.close()
                    self._queue = None

    def _log_stats(self) -> None:
        """One line for the whole stream (the benchmark reads it): requests add up over the pipelines."""
        started = [w for w in self.watchers.values() if w.started]
        if not started:
            return
        log.info(
            "Watcher stats %s", ScanStats.combined([w.scanner.stats for w in started]).line(len(started))
        )
        for watcher in started:
            watcher.scanner.stats = ScanStats()

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

    async def _sweep_every_interval(self, client: Any) -> None:
        while True:
            await asyncio.sleep(self.knobs.reconcile_interval_s)
            for watcher in list(self.watchers.values()):
                if not watcher.started:
                    continue
                try:
                    await watcher.sweep(client)
                except Exception as error:  # the next sweep tries again; polls go on meanwhile
                    log.warning(
                        "Reconciliation sweep of s3://%s/%s failed: %s", self.bucket, watcher.prefix, error
                    )

    async def _ticks(self, seconds: float) -> AsyncIterator[tuple[dict[str, str], None]]:
        """Sleep `seconds`, yielding a heartbeat tick at least every HEARTBEAT_S; a pipeline subscribing
        or leaving ends the sleep early."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._changed is not None:
                try:
                    await asyncio.wait_for(self._changed.wait(), min(left, HEARTBEAT_S))
                    return
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(min(left, HEARTBEAT_S))
            if deadline - time.monotonic() > 0:
                yield TICK, None

    def get_advance_lane(self, broker_payload: Any) -> Hashable:
        # One lane per pipeline: a pipeline whose event waits for its persist never holds up another's.
        return broker_payload.pipeline if isinstance(broker_payload, Report) else None

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        # Never raises: an exception here would end the whole stream and re-report every open event.
        for item in batch:
            report = item.broker_payload
            if not isinstance(report, Report):
                continue
            watcher = report.source or self.watchers.get(report.pipeline)
            try:
                if watcher is None:
                    continue
                if persisted(item.outcome):
                    await watcher.persisted(self._client, report)
                    if report.tokens and self._queue is not None:
                        await self._queue.ack(report.tokens)  # only now: the event is persisted and recorded
                else:
                    watcher.not_persisted(report, item.outcome)
                    if report.tokens and self._queue is not None:
                        await self._queue.release(report.tokens)  # delivered again, here or elsewhere
            except Exception as error:
                log.exception(
                    "Recording batch %s failed (%s); its landings stay acknowledged", report.batch, error
                )
