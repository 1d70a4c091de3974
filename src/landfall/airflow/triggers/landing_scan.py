"""Finding unreported landings in S3 at a cost that does not grow with the landing prefix's history.

Each poll makes a fixed handful of requests: one delimited listing of the prefix's top level (its folder
names and any stray root objects; one page per 1,000 folders), then a listing of each folder that can
hold something new:

* the open days (`open_days` before today up to tomorrow, UTC) that exist;
* folders that were not there at the last listing (a backdated day landed now);
* folders whose listing changed in the last `HOT_S` (a late part, the next hour of a day, a re-land).

A *reconciliation sweep* lists the whole prefix every `reconcile_interval_s`, and once at start, for a
landing anywhere else (a backdated file in an old folder, a notification missed in queue mode). It runs
beside the polls, page by page, so it never holds the event loop for long, and it compacts quiet folders
(`landfall.pipeline.landing_ledger`).

Membership is one dict and one set lookup per object. Manifests are read the first time a folder is
needed and kept: a compacted folder costs a few bytes of memory.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from landfall.pipeline.keys import (
    ROOT_FOLDER,
    folder_manifest,
    key_digest,
    legacy_seen_prefix,
)
from landfall.pipeline.landing import Landing, PartRule
from landfall.pipeline.landing_ledger import FolderLedger, folder_of, open_days

log = logging.getLogger(__name__)

HOT_S = 3600.0
"""A folder whose listing changed this recently is listed every poll (at most MAX_HOT of them)."""
MAX_HOT = 32
_CONCURRENCY = 16  # S3 requests in flight at once when many folders are listed or written
_requests_of = contextvars.ContextVar("landfall_watcher_requests", default="poll")


@dataclass
class ScanStats:
    """Counters the watcher logs: what a poll and a sweep cost (the benchmark reads these lines)."""

    polls: int = 0
    poll_requests: int = 0
    sweep_requests: int = 0
    sweeps: int = 0
    swept_objects: int = 0
    swept_folders: int = 0
    sweep_s: float = 0.0
    sweep_cpu_s: float = 0.0
    compacted: int = 0
    cpu_started: float = field(default_factory=time.process_time)
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        seconds = time.monotonic() - self.started
        body = {
            "window_s": round(seconds, 1),
            "polls": self.polls,
            "poll_requests": self.poll_requests,
            "requests_per_poll": round(self.poll_requests / self.polls, 2) if self.polls else None,
            "cpu_s": round(time.process_time() - self.cpu_started, 3),
            "sweeps": self.sweeps,
            "sweep_requests": self.sweep_requests,
            "swept_objects": self.swept_objects,
            "swept_folders": self.swept_folders,
            "sweep_s": round(self.sweep_s, 2),
            "sweep_cpu_s": round(self.sweep_cpu_s, 3),
            "compacted_folders": self.compacted,
        }
        return json.dumps(body)


class LandingScanner:
    """The watcher's view of the landing prefix and of its ledger of reported landings."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        ledger: str,
        parts: PartRule | None,
        open_days_back: int,
        retention_s: float,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.bucket, self.prefix, self.ledger, self.parts = bucket, prefix, ledger, parts
        self.open_days_back = open_days_back
        self.retention_s = retention_s
        self.now = now
        self.stats = ScanStats()
        self._ledgers: dict[str, FolderLedger] = {}
        self._dirty: set[str] = set()
        self._known: set[str] = set()  # top-level folders listed whole by this process
        self._hot: dict[str, float] = {}  # folder -> when its listing last changed (monotonic)
        self._shape: dict[str, tuple[int, int]] = {}  # folder -> (objects, newest) at its last listing
        self._swept: dict[tuple[str, str], Landing] = {}  # found by the sweep, taken by the next poll
        self._legacy: set[tuple[str, str]] = set()  # (key digest, version) from the old `seen/` markers
        self._legacy_keys: list[str] = []
        self._flushing = asyncio.Lock()

    # ---- S3 -------------------------------------------------------------------------------------------

    def attach(self, client: Any) -> None:
        """Once per stream (each runs on its own event loop): count the client's requests."""
        self._flushing = asyncio.Lock()

        def count(**_: Any) -> None:
            if _requests_of.get() == "sweep":
                self.stats.sweep_requests += 1
            else:
                self.stats.poll_requests += 1

        client.meta.events.register("before-send.s3", count)

    async def _pages(self, client: Any, prefix: str, delimiter: str | None = None) -> AsyncIterator[dict]:
        paginator = client.get_paginator("list_objects_v2")
        extra = {"Delimiter": delimiter} if delimiter else {}
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, **extra):
            yield page

    async def _list_folder(self, client: Any, folder: str) -> list[Landing]:
        return [
            Landing.from_listing(self.bucket, self.prefix, obj)
            async for page in self._pages(client, f"{self.prefix}/{folder}/")
            for obj in page.get("Contents", [])
        ]

    async def _top_level(self, client: Any) -> tuple[set[str], list[Landing]]:
        """The folder names directly under the prefix, and the objects that sit there without one."""
        folders, root = set(), []
        async for page in self._pages(client, f"{self.prefix}/", delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                folders.add(common["Prefix"][len(self.prefix) + 1 :].rstrip("/"))
            root.extend(Landing.from_listing(self.bucket, self.prefix, o) for o in page.get("Contents", []))
        return folders, root

    async def ledger_of(self, client: Any, folder: str) -> FolderLedger:
        """The folder's manifest, read from S3 the first time it is needed."""
        from botocore.exceptions import ClientError

        if folder not in self._ledgers:
            key = folder_manifest(self.ledger, folder)
            try:
                answer = await client.get_object(Bucket=self.bucket, Key=key)
                ledger = FolderLedger.from_json(folder, await answer["Body"].read())
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                    raise
                ledger = FolderLedger(folder)
            self._ledgers[folder] = ledger
        return self._ledgers[folder]

    async def flush(self, client: Any) -> None:
        """Write the manifests that changed; one that fails stays dirty for the next poll."""
        semaphore = asyncio.Semaphore(_CONCURRENCY)

        async def write(folder: str) -> None:
            async with semaphore:
                self._dirty.discard(folder)  # before the body: an entry recorded during the PUT stays dirty
                try:
                    await client.put_object(
                        Bucket=self.bucket,
                        Key=folder_manifest(self.ledger, folder),
                        Body=self._ledgers[folder].to_json(),
                        ContentType="application/json",
                    )
                except BaseException:
                    self._dirty.add(folder)
                    raise

        async with self._flushing:  # one flush at a time: an older body never lands after a newer one
            dirty = sorted(self._dirty)
            results = await asyncio.gather(*(write(f) for f in dirty), return_exceptions=True)
        failed = [result for result in results if isinstance(result, BaseException)]
        if failed:
            log.warning(
                "%d ledger manifest(s) not written (%s); retrying on the next poll", len(failed), failed[0]
            )

    # ---- what is new ------------------------------------------------------------------------------------

    def record(self, landings: list[Landing]) -> None:
        """Landings whose event Airflow persisted: known from now on, written at the next flush."""
        for landing in landings:
            folder = folder_of(landing.key, self.prefix)
            self._ledgers.setdefault(folder, FolderLedger(folder)).record(landing)
            self._dirty.add(folder)

    def recorded(self, landing: Landing) -> bool:
        """Whether this process's ledger knows the landing now (no I/O): `advance()` may have recorded
        it while a poll was listing, after the poll had judged it unknown."""
        ledger = self._ledgers.get(folder_of(landing.key, self.prefix))
        return ledger is not None and ledger.knows(landing)

    def report_again(self, landings: list[Landing]) -> None:
        """Landings whose event was not persisted: the next poll reports them, wherever they are."""
        for landing in landings:
            self._swept.setdefault(landing.identity, landing)

    def _reportable(self, listed: list[Landing]) -> list[Landing]:
        return self.parts.reportable(listed) if self.parts else listed

    async def _unknown(self, client: Any, folder: str, listed: list[Landing]) -> list[Landing]:
        ledger = await self.ledger_of(client, folder)
        fresh = []
        for landing in self._reportable(listed):
            if ledger.knows(landing):
                continue
            if self._legacy and (key_digest(landing.key), landing.version) in self._legacy:
                ledger.record(landing)  # reported before the manifests existed
                self._dirty.add(folder)
                continue
            fresh.append(landing)
        return fresh

    def _note_shape(self, folder: str, listed: list[Landing]) -> None:
        shape = (len(listed), max((landing.last_modified for landing in listed), default=0))
        if self._shape.get(folder) != shape:
            self._shape[folder] = shape
            self._hot[folder] = time.monotonic()

    def _hot_folders(self) -> list[str]:
        cutoff = time.monotonic() - HOT_S
        for folder in [f for f, at in self._hot.items() if at < cutoff]:
            del self._hot[folder]
        return sorted(self._hot, key=self._hot.__getitem__)[-MAX_HOT:]

    async def poll(self, client: Any) -> list[Landing]:
        """Unknown landings in the folders that can change, and those the sweep found since last poll."""
        self.stats.polls += 1
        folders, root = await self._top_level(client)
        today = datetime.fromtimestamp(self.now(), UTC).date()
        self._known &= folders  # a folder emptied (quarantined) and landed in again is new again
        wanted = (folders - self._known) | (set(open_days(today, self.open_days_back)) & folders)
        wanted |= set(self._hot_folders()) & folders
        fresh = await self._unknown(client, ROOT_FOLDER, root)
        return await self._with_swept(client, fresh + await self._unknown_in_folders(client, wanted))

    async def look_at(self, client: Any, keys: list[str]) -> list[Landing]:
        """Queue mode: unknown landings in the folders of the keys notifications named (duplicated,
        stale or reordered notifications find nothing new), and those the sweep found."""
        self.stats.polls += 1
        folders = {folder_of(key, self.prefix) for key in keys if key.startswith(self.prefix + "/")}
        fresh = []
        if ROOT_FOLDER in folders:
            folders.discard(ROOT_FOLDER)
            fresh = await self._unknown(client, ROOT_FOLDER, (await self._top_level(client))[1])
        return await self._with_swept(client, fresh + await self._unknown_in_folders(client, folders))

    async def _unknown_in_folders(self, client: Any, folders: set[str]) -> list[Landing]:
        semaphore = asyncio.Semaphore(_CONCURRENCY)

        async def unknown_in(folder: str) -> list[Landing]:
            async with semaphore:
                listed = await self._list_folder(client, folder)
            self._known.add(folder)  # only once listed: a folder whose listing failed is still new
            self._note_shape(folder, listed)
            return await self._unknown(client, folder, listed)

        return [
            landing
            for found_in_folder in await asyncio.gather(*(unknown_in(f) for f in sorted(folders)))
            for landing in found_in_folder
        ]

    async def _with_swept(self, client: Any, fresh: list[Landing]) -> list[Landing]:
        found = {landing.identity: landing for landing in fresh}
        for identity, landing in list(self._swept.items()):
            del self._swept[identity]
            if not (await self.ledger_of(client, folder_of(landing.key, self.prefix))).knows(landing):
                found.setdefault(identity, landing)
        return list(found.values())

    async def sweep(self, client: Any) -> None:
        """List the whole prefix once: queue what is unknown for the next poll, compact quiet folders."""
        token = _requests_of.set("sweep")
        started, cpu = time.monotonic(), time.process_time()
        objects = folders = 0
        try:
            folder, listed = None, []
            async for page in self._pages(client, f"{self.prefix}/"):
                for obj in page.get("Contents", []):
                    landing = Landing.from_listing(self.bucket, self.prefix, obj)
                    this = folder_of(landing.key, self.prefix)
                    if this != folder and listed:
                        await self._reconcile(client, folder, listed)
                        folders += 1
                        listed = []
                    folder = this
                    listed.append(landing)
                    objects += 1
            if listed:
                await self._reconcile(client, folder, listed)
                folders += 1
            await self.flush(client)
            self._legacy.clear()  # every landing they named is in a manifest now
            await self._delete_legacy(client)
        finally:
            _requests_of.reset(token)
        self.stats.sweeps += 1
        self.stats.swept_objects, self.stats.swept_folders = objects, folders
        self.stats.sweep_s = time.monotonic() - started
        self.stats.sweep_cpu_s = time.process_time() - cpu

    async def _reconcile(self, client: Any, folder: str | None, listed: list[Landing]) -> None:
        folder = folder or ROOT_FOLDER
        if folder != ROOT_FOLDER:
            self._known.add(folder)
        unknown = await self._unknown(client, folder, listed)
        for landing in unknown:
            self._swept.setdefault(landing.identity, landing)
        newest = max(landing.last_modified for landing in listed)
        if not unknown and self._ledgers[folder].compact(newest, int(self.now()), int(self.retention_s)):
            self._dirty.add(folder)
            self.stats.compacted += 1

    # ---- the ledger format before per-folder manifests --------------------------------------------------

    async def load_legacy(self, client: Any) -> None:
        """Markers of the old ledger (one object per landing): honoured until the first sweep has moved
        every landing they name into a manifest, then deleted."""
        prefix = legacy_seen_prefix(self.ledger)
        async for page in self._pages(client, prefix):
            for obj in page.get("Contents", []):
                digest, _, version = obj["Key"][len(prefix) :].partition("/")
                self._legacy.add((digest, version))
                self._legacy_keys.append(obj["Key"])
        if self._legacy_keys:
            log.info("Moving %d ledger marker(s) of the old format into folder manifests", len(self._legacy))

    async def _delete_legacy(self, client: Any) -> None:
        if self._dirty or not self._legacy_keys:
            return  # a manifest is not written yet: keep the old markers until the next sweep
        keys, self._legacy_keys = self._legacy_keys, []
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": key} for key in keys[start : start + 1000]]
            await client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})
