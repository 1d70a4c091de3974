"""The watcher's ledger: which landings it has reported, one small manifest per landing folder.

The landing prefix is date-structured (`<prefix>/<YYYY-MM-DD>/...`), so the watcher need not list all of
it every poll. It lists only the folders that can change - the open days around today, folders it has
not seen before, folders that changed recently - and sweeps the whole prefix far less often to catch a
backdated landing anywhere. Both ask the same question of each listed landing, "reported already?", and
this module answers it in O(1) from the folder's manifest.

A folder quiet for the retention period is *compacted*: its entries fold into one number, the
watermark, meaning "every object here last modified at or before this second was accounted for". A PUT
into that folder later is newer than the watermark by construction (its Last-Modified is the time of the
PUT), so it is still found; the manifest no longer grows with the folder's history. That trusts
Last-Modified to be the arrival time, as S3's PUT and copy make it; retention is at
least a day, so a PUT in flight is never in the watermark's second.

Pure logic, no I/O: the watcher (`landfall.airflow.triggers`) reads and writes the manifests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from landfall.pipeline.keys import ROOT_FOLDER as ROOT
from landfall.pipeline.landing import Landing


def folder_of(key: str, prefix: str) -> str:
    """The top-level folder of a key under `<prefix>/`: `2026-11-20` for `<prefix>/2026-11-20/07/x`."""
    rest = key[len(prefix) + 1 :] if key.startswith(prefix + "/") else key
    head, slash, _ = rest.partition("/")
    return head if slash else ROOT


def open_days(today: date, days_back: int) -> list[str]:
    """The date folders a landing is expected in now: `days_back` days before today up to tomorrow
    (a producer ahead of UTC). They are listed every poll whatever they hold."""
    return [(today + timedelta(days=offset)).isoformat() for offset in range(-days_back, 2)]


@dataclass
class FolderLedger:
    """What the watcher reported from one top-level landing folder."""

    folder: str
    watermark: int = -1  # epoch s; every object modified at or before it is accounted for
    reported: dict[str, set[str]] = field(default_factory=dict)  # key -> versions reported

    def knows(self, landing: Landing) -> bool:
        return landing.last_modified <= self.watermark or landing.version in self.reported.get(
            landing.key, ()
        )

    def record(self, landing: Landing) -> None:
        self.reported.setdefault(landing.key, set()).add(landing.version)

    def merge(self, other: FolderLedger) -> None:
        """Take in what another copy of this manifest knows (another watcher wrote it): the union of the
        reported versions and the later watermark. Each copy only ever accounts for landings, so the
        merged one knows exactly what either knew."""
        self.watermark = max(self.watermark, other.watermark)
        for key, versions in other.reported.items():
            self.reported.setdefault(key, set()).update(versions)

    @property
    def entries(self) -> int:
        return sum(len(versions) for versions in self.reported.values())

    def compact(self, newest_listed: int, now: int, retention_s: int) -> bool:
        """Fold the entries into the watermark when nothing landed here for `retention_s`.

        Call it only after a listing of the whole folder whose every reportable landing is known (the
        sweep checks); `newest_listed` is that listing's newest Last-Modified, parts waiting for their
        marker included. Returns whether the manifest changed.
        """
        reported = (int(version.split("-", 1)[0]) for vs in self.reported.values() for version in vs)
        newest = max(newest_listed, max(reported, default=-1))
        if now - newest < retention_s or (not self.reported and self.watermark >= newest):
            return False
        self.watermark = max(self.watermark, newest)
        self.reported.clear()
        return True

    def to_json(self) -> bytes:
        body = {
            "folder": self.folder,
            "watermark": self.watermark,
            "reported": {key: sorted(versions) for key, versions in sorted(self.reported.items())},
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, folder: str, raw: bytes) -> FolderLedger:
        body: dict[str, Any] = json.loads(raw)
        if body.get("folder") != folder:
            raise ValueError(f"manifest of {body.get('folder')!r} found where {folder!r} was expected")
        return cls(
            folder=folder,
            watermark=int(body.get("watermark", -1)),
            reported={str(key): {str(v) for v in versions} for key, versions in body["reported"].items()},
        )
