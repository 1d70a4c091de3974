"""The watcher's ledger in S3: one manifest per landing folder, read once, written compare-and-set.

* **Read once.** A folder's manifest is read the first time the folder has something to judge, and
  kept (a compacted folder costs a few bytes). When many folders need theirs at once (a burst across
  many new days) one listing of the manifests says which exist, and only those are read: a folder the
  ledger never wrote costs no GET.
* **Written compare-and-set.** Each PUT carries the ETag of the version this watcher last read or wrote
  (If-Match), or If-None-Match when it saw none. Two watchers can run at once (a zombie triggerer beside
  a live one, HA triggerers): when the PUT is refused (412) the current manifest is read, merged (the
  union of what both reported, `FolderLedger.merge`) and written again, so no watcher overwrites
  another's records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from landfall.pipeline import s3 as s3ops
from landfall.pipeline.keys import folder_manifest, folders_prefix
from landfall.pipeline.landing import Landing
from landfall.pipeline.landing_ledger import FolderLedger

log = logging.getLogger(__name__)

CONCURRENCY = 16
"""S3 requests in flight at once when many manifests are read or written."""
OBJECTS_PER_REQUEST = 16
"""What a listing entry costs beside a request of its own: parsing a LIST page of 1,000 objects took
0.07-0.18 s of CPU here, a small request 1-3 ms, so one request weighs about 16 listed objects. A
listing replaces a request per folder when it parses fewer than this many entries per folder."""
_LIST_ABOVE = 8
_WRITE_ATTEMPTS = 5


class ManifestConflict(RuntimeError):
    """Other writers kept changing a manifest between this watcher's read and its write."""


class ManifestStore:
    """Folder ledgers, as this watcher knows them, and their manifests in S3."""

    def __init__(self, bucket: str, ledger: str) -> None:
        self.bucket, self.ledger = bucket, ledger
        self.dirty: set[str] = set()  # folders whose ledger changed since its manifest was written
        self._ledgers: dict[str, FolderLedger] = {}
        self._etags: dict[str, str] = {}  # folder -> ETag of the manifest version last read or written
        self._read: set[str] = set()  # folders whose manifest (or its absence) has been taken in
        self._flushing = asyncio.Lock()

    def attach(self) -> None:
        """Once per stream (each runs on its own event loop)."""
        self._flushing = asyncio.Lock()

    def knows(self, folder: str, landing: Landing) -> bool:
        """Whether the folder's ledger, as this process knows it now, holds the landing (no I/O)."""
        ledger = self._ledgers.get(folder)
        return ledger is not None and ledger.knows(landing)

    def has_read(self, folder: str) -> bool:
        return folder in self._read

    def record(self, folder: str, landing: Landing) -> None:
        self._ledgers.setdefault(folder, FolderLedger(folder)).record(landing)
        self.dirty.add(folder)

    def ledger_for(self, folder: str) -> FolderLedger:
        """The folder's ledger (after `load`)."""
        return self._ledgers.setdefault(folder, FolderLedger(folder))

    async def load(self, client: Any, folders: Iterable[str]) -> None:
        """Take in the manifests of these folders not read yet: a GET each, or, for many, one listing of
        the manifests first and a GET of those that exist."""
        needed = sorted({folder for folder in folders if folder not in self._read})
        # The listing holds every manifest (about one per folder read so far): worth it for many.
        if len(needed) > _LIST_ABOVE and len(needed) * OBJECTS_PER_REQUEST > len(self._read) + len(needed):
            existing = await self._existing(client)
            for folder in needed:
                if folder_manifest(self.ledger, folder) not in existing:
                    self._take(folder, None)
            needed = [folder for folder in needed if folder not in self._read]
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def read(folder: str) -> None:
            async with semaphore:
                await self._read_manifest(client, folder)

        await asyncio.gather(*(read(folder) for folder in needed))

    async def _existing(self, client: Any) -> set[str]:
        paginator = client.get_paginator("list_objects_v2")
        keys: set[str] = set()
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=folders_prefix(self.ledger)):
            keys.update(obj["Key"] for obj in page.get("Contents", []))
        return keys

    async def _read_manifest(self, client: Any, folder: str) -> None:
        found = await s3ops.aget_bytes(client, self.bucket, folder_manifest(self.ledger, folder))
        self._take(folder, found)

    def _take(self, folder: str, found: tuple[bytes, str] | None) -> None:
        """Merge a manifest read from S3 (None: there is none) into this process's ledger of the folder."""
        ledger = self._ledgers.setdefault(folder, FolderLedger(folder))
        if found is None:
            self._etags.pop(folder, None)
        else:
            body, etag = found
            ledger.merge(FolderLedger.from_json(folder, body))
            self._etags[folder] = etag
        self._read.add(folder)

    async def flush(self, client: Any) -> None:
        """Write the manifests that changed; one that fails stays dirty for the next poll."""
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def write(folder: str) -> None:
            async with semaphore:
                self.dirty.discard(folder)  # before the body: an entry recorded during the PUT stays dirty
                try:
                    await self._write(client, folder)
                except BaseException:
                    self.dirty.add(folder)
                    raise

        async with self._flushing:  # one flush at a time: an older body never lands after a newer one
            dirty = sorted(self.dirty)
            results = await asyncio.gather(*(write(f) for f in dirty), return_exceptions=True)
        failed = [result for result in results if isinstance(result, BaseException)]
        if failed:
            log.warning(
                "%d ledger manifest(s) not written (%s); retrying on the next poll", len(failed), failed[0]
            )

    async def _write(self, client: Any, folder: str) -> None:
        key = folder_manifest(self.ledger, folder)
        for _ in range(_WRITE_ATTEMPTS):
            body = self._ledgers[folder].to_json()
            etag = await s3ops.aput_bytes_if_match(
                client, self.bucket, key, body, self._etags.get(folder), ContentType="application/json"
            )
            if etag is not None:
                self._etags[folder] = etag
                return
            # Another watcher wrote it since this one read it: take in its records, write the union.
            await self._read_manifest(client, folder)
        raise ManifestConflict(f"s3://{self.bucket}/{key} kept changing under {_WRITE_ATTEMPTS} writes")
