"""Object keys of the data products: how a landed key is parsed and where derived objects go.

Landed keys come from outside and are hostile until proven otherwise: only
`<landing_prefix>/<YYYY-MM-DD>/<landing_filename>` with a real calendar date is accepted.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date

from landfall.settings import StorageSettings

# ASCII digits only: `\d` would also accept e.g. fullwidth digits, which are no date folder.
_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class RejectedKey(ValueError):
    """A landed key that does not name a daily partition; `reason` is a stable machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class LandedKey:
    key: str
    partition_date: date

    @property
    def partition(self) -> str:
        return self.partition_date.isoformat()


def parse_landing_key(key: str, storage: StorageSettings) -> LandedKey:
    """Accept exactly `<landing_prefix>/<YYYY-MM-DD>/<landing_filename>`; raise RejectedKey otherwise."""
    prefix = storage.landing_prefix + "/"
    if not key.startswith(prefix):
        raise RejectedKey("bad_key", f"{key!r} is not under the landing prefix {prefix!r}")
    parts = key[len(prefix) :].split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise RejectedKey("bad_key", f"{key!r} has empty, '.' or '..' path segments")
    if len(parts) != 2:
        raise RejectedKey(
            "bad_key", f"{key!r} must be {prefix}<YYYY-MM-DD>/{storage.landing_filename} (one date folder)"
        )
    partition, filename = parts
    if filename != storage.landing_filename:
        raise RejectedKey("bad_suffix", f"{key!r}: file name must be {storage.landing_filename!r}")
    if not _DATE_RE.match(partition):
        raise RejectedKey("bad_partition", f"{key!r}: {partition!r} is not a YYYY-MM-DD date")
    try:
        partition_date = date.fromisoformat(partition)
    except ValueError:
        raise RejectedKey("bad_partition", f"{key!r}: {partition!r} is not a calendar date") from None
    return LandedKey(key=key, partition_date=partition_date)


def landing_key(storage: StorageSettings, partition_date: date) -> str:
    return f"{storage.landing_prefix}/{partition_date.isoformat()}/{storage.landing_filename}"


def raw_key(storage: StorageSettings, partition: str) -> str:
    return f"{storage.raw_prefix}/date={partition}/data.parquet"


def processed_key(storage: StorageSettings, partition: str, split: str) -> str:
    """Where preprocess writes a partition's `train` or `test` split."""
    return f"{storage.processed_prefix}/date={partition}/{split}.parquet"


def key_digest(key: str) -> str:
    """A fixed-length, path-safe stand-in for an arbitrary (possibly hostile) key."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def quarantine_folder(storage: StorageSettings, key: str, etag: str, partition: str | None) -> str:
    """Where a rejected object goes: grouped by date when one could be read, else under `unknown`."""
    day = partition if partition and _DATE_RE.match(partition) else "unknown"
    return f"{storage.quarantine_prefix}/{day}/{key_digest(key)}-{etag}"


def ledger_key(storage: StorageSettings, key: str, etag: str) -> str:
    return f"{storage.ledger_prefix}/{key_digest(key)}/{etag}"
