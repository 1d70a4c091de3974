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

When many folders are new at once (a burst across many days) one listing of the range of the prefix
that holds them replaces a listing per folder, if that range holds little else. A folder whose listing
is empty (its landings were quarantined) is not kept hot.

Membership is one dict and one set lookup per object. The ledger's manifests are read and written by
`landing_manifests.ManifestStore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from landfall.airflow.triggers.landing_manifests import CONCURRENCY, OBJECTS_PER_REQUEST, ManifestStore
from landfall.airflow.triggers.landing_stats import ScanStats
from landfall.pipeline.keys import ROOT_FOLDER, key_digest, legacy_seen_prefix
from landfall.pipeline.landing import Landing, PartRule
from landfall.pipeline.landing_ledger import folder_of, open_days

log = logging.getLogger(__name__)

HOT_S = 3600.0
"""A folder whose listing changed this recently is listed every poll (at most MAX_HOT of them)."""
MAX_HOT = 32
BULK_FOLDERS = 48
"""More new folders than this in one poll are listed by one listing of the range of the prefix that
holds them, when that range parses fewer than OBJECTS_PER_REQUEST objects per folder (1,000 new day
folders: one or two LIST pages instead of 1,000 LISTs). A poll's usual few dozen folders at most (open
days, hot folders, a new day) are listed one by one: the range between them can hold whole days."""
_requests_of = contextvars.ContextVar("landfall_watcher_requests", default="poll")
_requester: contextvars.ContextVar[LandingScanner | None] = contextvars.ContextVar(
    "landfall_watcher_requester", default=None
)
"""The scanner on whose behalf the current task calls S3: several scanners (one per pipeline) share one
client, and each counts only its own requests. Unset, every attached scanner counts the request."""


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
        self.manifests = ManifestStore(bucket, ledger)
        self._known: set[str] = set()  # top-level folders listed whole by this process
        self._hot: dict[str, float] = {}  # folder -> when its listing last changed (monotonic)
        self._shape: dict[str, tuple[int, int]] = {}  # folder -> (objects, newest) at its last listing
        self._sizes: dict[str, int] = {}  # folder -> objects at its last listing (poll or sweep)
        self._swept: dict[tuple[str, str], Landing] = {}  # found by the sweep, taken by the next poll
        self._legacy: set[tuple[str, str]] = set()  # (key digest, version) from the old `seen/` markers
        self._legacy_keys: list[str] = []

    # ---- S3 -------------------------------------------------------------------------------------------

    def attach(self, client: Any) -> None:
        """Once per stream (each runs on its own event loop): count the client's requests."""
        self.manifests.attach()

        def count(**_: Any) -> None:
            if _requester.get() not in (None, self):
                return
            if _requests_of.get() == "sweep":
                self.stats.sweep_requests += 1
            else:
                self.stats.poll_requests += 1

        self._count = count
        client.meta.events.register("before-send.s3", count)

    def detach(self, client: Any) -> None:
        """Stop counting the client's requests (the scanner is dropped, the client lives on)."""
        if getattr(self, "_count", None) is not None:
            client.meta.events.unregister("before-send.s3", self._count)
            self._count = None

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        """Requests made inside count as this scanner's (the client is shared by every pipeline's)."""
        token = _requester.set(self)
        try:
            yield
        finally:
            _requester.reset(token)

    async def _pages(self, client: Any, prefix: str, **extra: str) -> AsyncIterator[dict]:
        paginator = client.get_paginator("list_objects_v2")
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
        async for page in self._pages(client, f"{self.prefix}/", Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                folders.add(common["Prefix"][len(self.prefix) + 1 :].rstrip("/"))
            root.extend(Landing.from_listing(self.bucket, self.prefix, o) for o in page.get("Contents", []))
        return folders, root

    async def _list_range(self, client: Any, folders: set[str]) -> dict[str, list[Landing]]:
        """The objects of `folders` from one listing of the prefix, from the first of them to the last.

        A folder's keys sit together, from `<prefix>/<folder>/` on. Stores order folders by key (AWS:
        `a-b/` before `a/`) or by name (SeaweedFS lists directories: `a` before `a-b`): the listing starts
        at the first folder in both orders (from the top when they disagree) and stops past the last in
        both. SeaweedFS skips a whole directory named by StartAfter, so it names `<folder>/`."""
        by_name, by_key = sorted(folders), sorted(f"{folder}/" for folder in folders)
        start = {"StartAfter": f"{self.prefix}/{by_key[0]}"} if by_key[0] == f"{by_name[0]}/" else {}
        last_key, last_name = f"{self.prefix}/{by_key[-1]}", by_name[-1]
        listed: dict[str, list[Landing]] = {folder: [] for folder in folders}
        async for page in self._pages(client, f"{self.prefix}/", **start):
            for obj in page.get("Contents", []):
                key, folder = obj["Key"], folder_of(obj["Key"], self.prefix)
                if folder in listed:
                    listed[folder].append(Landing.from_listing(self.bucket, self.prefix, obj))
                elif key > last_key and not key.startswith(last_key) and folder > last_name:
                    return listed
        return listed

    def _range_is_cheaper(self, folders: set[str]) -> bool:
        if len(folders) <= BULK_FOLDERS:
            return False
        starts = sorted(f"{self.prefix}/{folder}/" for folder in folders)
        first, last = starts[0], starts[-1]
        others = sum(
            size
            for folder, size in self._sizes.items()
            if folder not in folders and first <= f"{self.prefix}/{folder}/" <= last
        )
        ours = sum(self._sizes.get(folder, 1) for folder in folders)
        return others + ours < OBJECTS_PER_REQUEST * len(folders)

    async def _list_folders(self, client: Any, folders: set[str], many: set[str]) -> dict[str, list[Landing]]:
        """The objects of each folder: `many` (new folders) by one range listing when that is cheaper,
        the rest one listing each."""
        in_range = many if self._range_is_cheaper(many) else set()
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def each(folder: str) -> tuple[str, list[Landing]]:
            async with semaphore:
                return folder, await self._list_folder(client, folder)

        listed = dict(await asyncio.gather(*(each(f) for f in sorted(folders - in_range))))
        if in_range:
            listed.update(await self._list_range(client, in_range))
        for folder, objects in listed.items():
            self._note_shape(folder, objects)
        return listed

    # ---- what is new ------------------------------------------------------------------------------------

    def record(self, landings: list[Landing]) -> None:
        """Landings whose event Airflow persisted: known from now on, written at the next flush."""
        for landing in landings:
            self.manifests.record(folder_of(landing.key, self.prefix), landing)

    async def flush(self, client: Any) -> None:
        await self.manifests.flush(client)

    def recorded(self, landing: Landing) -> bool:
        """Whether this process's ledger knows the landing now (no I/O): `advance()` may have recorded
        it while a poll was listing, after the poll had judged it unknown."""
        return self.manifests.knows(folder_of(landing.key, self.prefix), landing)

    def report_again(self, landings: list[Landing]) -> None:
        """Landings whose event was not persisted: the next poll reports them, wherever they are."""
        for landing in landings:
            self._swept.setdefault(landing.identity, landing)

    def _reportable(self, listed: list[Landing]) -> list[Landing]:
        return self.parts.reportable(listed) if self.parts else listed

    async def _judge(self, client: Any, listed: dict[str, list[Landing]]) -> list[Landing]:
        """The unknown landings of listed folders (their manifests read first, as one batch)."""
        await self.manifests.load(client, [folder for folder, objects in listed.items() if objects])
        return [landing for folder, objects in listed.items() for landing in self._unknown(folder, objects)]

    def _unknown(self, folder: str, listed: list[Landing]) -> list[Landing]:
        """Reportable landings the folder's ledger does not know; the ledger must be loaded."""
        fresh = []
        for landing in self._reportable(listed):
            if self.manifests.knows(folder, landing):
                continue
            if self._legacy and (key_digest(landing.key), landing.version) in self._legacy:
                self.manifests.record(folder, landing)  # reported before the manifests existed
                continue
            fresh.append(landing)
        return fresh

    def _note_shape(self, folder: str, listed: list[Landing]) -> None:
        self._sizes[folder] = len(listed)
        shape = (len(listed), max((landing.last_modified for landing in listed), default=0))
        if not listed:  # emptied (quarantined): nothing in it to change, whatever the store still lists
            self._shape[folder] = shape
            self._hot.pop(folder, None)
        elif self._shape.get(folder) != shape:
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
        new = folders - self._known
        wanted = new | (set(open_days(today, self.open_days_back)) & folders)
        wanted |= set(self._hot_folders()) & folders
        listed = await self._list_folders(client, wanted, new)
        fresh = await self._judge(client, {ROOT_FOLDER: root, **listed})
        found = await self._with_swept(client, fresh)
        self._known |= listed.keys()  # only now: a folder in a poll that failed is still new
        return found

    async def look_at(self, client: Any, keys: list[str]) -> list[Landing]:
        """Queue mode: unknown landings in the folders of the keys notifications named (duplicated,
        stale or reordered notifications find nothing new), and those the sweep found."""
        self.stats.polls += 1
        folders = {folder_of(key, self.prefix) for key in keys if key.startswith(self.prefix + "/")}
        listed = {}
        if ROOT_FOLDER in folders:
            folders.discard(ROOT_FOLDER)
            listed[ROOT_FOLDER] = (await self._top_level(client))[1]
        listed.update(await self._list_folders(client, folders, folders))
        return await self._with_swept(client, await self._judge(client, listed))

    async def _with_swept(self, client: Any, fresh: list[Landing]) -> list[Landing]:
        found = {landing.identity: landing for landing in fresh}
        await self.manifests.load(
            client, {folder_of(landing.key, self.prefix) for landing in self._swept.values()}
        )
        for identity, landing in list(self._swept.items()):
            folder = folder_of(landing.key, self.prefix)
            if not self.manifests.has_read(folder):
                continue  # queued while the manifests were read: the next poll judges it
            del self._swept[identity]
            if not self.manifests.knows(folder, landing):
                found.setdefault(identity, landing)
        return list(found.values())

    async def sweep(self, client: Any) -> None:
        """List the whole prefix once: queue what is unknown for the next poll, compact quiet folders."""
        token = _requests_of.set("sweep")
        started, cpu = time.monotonic(), time.process_time()
        objects = folders = 0
        try:
            folder, listed, whole = ROOT_FOLDER, [], []  # whole: the folders this page completed
            async for page in self._pages(client, f"{self.prefix}/"):
                for obj in page.get("Contents", []):
                    landing = Landing.from_listing(self.bucket, self.prefix, obj)
                    this = folder_of(landing.key, self.prefix)
                    if this != folder and listed:
                        whole.append((folder, listed))
                        listed = []
                    folder = this
                    listed.append(landing)
                    objects += 1
                await self._reconcile(client, whole)
                folders, whole = folders + len(whole), []
            await self._reconcile(client, [(folder, listed)] if listed else [])
            folders += 1 if listed else 0
            await self.manifests.flush(client)
            self._legacy.clear()  # every landing they named is in a manifest now
            await self._delete_legacy(client)
        finally:
            _requests_of.reset(token)
        self.stats.sweeps += 1
        self.stats.swept_objects, self.stats.swept_folders = objects, folders
        self.stats.sweep_s = time.monotonic() - started
        self.stats.sweep_cpu_s = time.process_time() - cpu

    async def _reconcile(self, client: Any, whole: list[tuple[str, list[Landing]]]) -> None:
        """Folders the sweep listed whole: their manifests read (as one batch), what is unknown queued
        for the next poll, quiet ones compacted."""
        await self.manifests.load(client, [folder for folder, _ in whole])
        for folder, listed in whole:
            if folder != ROOT_FOLDER:
                self._known.add(folder)
                self._sizes[folder] = len(listed)
            unknown = self._unknown(folder, listed)
            for landing in unknown:
                self._swept.setdefault(landing.identity, landing)
            newest = max(landing.last_modified for landing in listed)
            ledger = self.manifests.ledger_for(folder)
            if not unknown and ledger.compact(newest, int(self.now()), int(self.retention_s)):
                self.manifests.dirty.add(folder)
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
        if self.manifests.dirty or not self._legacy_keys:
            return  # a manifest is not written yet: keep the old markers until the next sweep
        keys, self._legacy_keys = self._legacy_keys, []
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": key} for key in keys[start : start + 1000]]
            await client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})
