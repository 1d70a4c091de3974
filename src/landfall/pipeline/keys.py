"""Object keys of the data products: how a landed key is parsed and where derived objects go.

Landed keys come from outside and are hostile until proven otherwise. Under
`<landing_prefix>/<YYYY-MM-DD>/` (a daily partition `YYYY-MM-DD`) or `<landing_prefix>/<YYYY-MM-DD>/<HH>/`
(an hourly partition `YYYY-MM-DDTHH`), with a real calendar date, exactly three names are accepted:

* `<landing_filename>` (`features.parquet`): a whole day in one file, a landing of its own;
* `<landing_marker>` (`_SUCCESS`): completes a multi-part partition, whose data are the part files of
  the folder present when the marker landed;
* a name matching `<landing_part_glob>` (`part-*.parquet`): a part, ingested with its marker.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from landfall.core.shared_settings import StorageSettings

# ASCII digits only: `\d` would also accept e.g. fullwidth digits, which are no date folder. Always
# fullmatch: `$` also matches before a final newline ("07\n" is no hour).
_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_HOUR_RE = re.compile(r"^(?:[01][0-9]|2[0-3])$")
HOURS = tuple(f"{hour:02d}" for hour in range(24))


class RejectedKey(ValueError):
    """A landed key that does not name a daily partition; `reason` is a stable machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


KeyKind = Literal["file", "marker", "part"]


@dataclass(frozen=True)
class LandedKey:
    key: str
    partition_date: date
    kind: KeyKind = "file"
    hour: str | None = None  # "00".."23" for an hourly partition

    @property
    def partition(self) -> str:
        """`YYYY-MM-DD`, or `YYYY-MM-DDTHH` for an hourly partition."""
        day = self.partition_date.isoformat()
        return f"{day}T{self.hour}" if self.hour is not None else day

    @property
    def folder(self) -> str:
        """The partition's landing folder, with its trailing slash."""
        return self.key.rsplit("/", 1)[0] + "/"


def kind_of(filename: str, storage: StorageSettings) -> KeyKind | None:
    """Which landing shape a file name in a date folder belongs to, or None for any other name."""
    if filename == storage.landing_filename:
        return "file"
    if filename == storage.landing_marker:
        return "marker"
    if fnmatch.fnmatchcase(filename, storage.landing_part_glob):
        return "part"
    return None


def parse_landing_key(key: str, storage: StorageSettings) -> LandedKey:
    """Accept exactly `<landing_prefix>/<YYYY-MM-DD>/<name>` for the three names above; raise
    RejectedKey otherwise."""
    prefix = storage.landing_prefix + "/"
    if not key.startswith(prefix):
        raise RejectedKey("bad_key", f"{key!r} is not under the landing prefix {prefix!r}")
    parts = key[len(prefix) :].split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise RejectedKey("bad_key", f"{key!r} has empty, '.' or '..' path segments")
    hour = None
    if len(parts) == 3 and _HOUR_RE.fullmatch(parts[1]):
        partition, hour, filename = parts
    elif len(parts) == 2:
        partition, filename = parts
    else:
        raise RejectedKey(
            "bad_key",
            f"{key!r} must be {prefix}<YYYY-MM-DD>/<file> (a day) or {prefix}<YYYY-MM-DD>/<HH>/<file> "
            "(an hour, 00-23)",
        )
    kind = kind_of(filename, storage)
    if kind is None:
        raise RejectedKey(
            "bad_suffix",
            f"{key!r}: file name must be {storage.landing_filename!r}, or part files "
            f"{storage.landing_part_glob!r} completed by a {storage.landing_marker!r} marker",
        )
    if not _DATE_RE.fullmatch(partition):
        raise RejectedKey("bad_partition", f"{key!r}: {partition!r} is not a YYYY-MM-DD date")
    try:
        partition_date = date.fromisoformat(partition)
    except ValueError:
        raise RejectedKey("bad_partition", f"{key!r}: {partition!r} is not a calendar date") from None
    return LandedKey(key=key, partition_date=partition_date, kind=kind, hour=hour)


def day_of(partition: str) -> str:
    """The day of a daily or an hourly partition key."""
    return partition[:10]


def is_hourly(partition: str) -> bool:
    return len(partition) == 13 and partition[10] == "T"


def hours_of(day: str) -> list[str]:
    """The 24 hourly partition keys of a day."""
    return [f"{day}T{hour}" for hour in HOURS]


def landing_folder(storage: StorageSettings, partition_date: date, hour: int | None = None) -> str:
    """`<landing_prefix>/<day>/`, or `<landing_prefix>/<day>/<HH>/` for an hour."""
    folder = f"{storage.landing_prefix}/{partition_date.isoformat()}/"
    return folder if hour is None else f"{folder}{hour:02d}/"


def landing_key(storage: StorageSettings, partition_date: date, hour: int | None = None) -> str:
    return f"{landing_folder(storage, partition_date, hour)}{storage.landing_filename}"


def marker_key(storage: StorageSettings, partition_date: date, hour: int | None = None) -> str:
    return f"{landing_folder(storage, partition_date, hour)}{storage.landing_marker}"


def part_key(storage: StorageSettings, partition_date: date, index: int, hour: int | None = None) -> str:
    """The n-th part file of a multi-part day (or hour), named as Spark names them (matches the glob)."""
    return f"{landing_folder(storage, partition_date, hour)}part-{index:05d}.parquet"


def key_digest(key: str) -> str:
    """A fixed-length, path-safe stand-in for an arbitrary (possibly hostile) key."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


# ---- the data products ---------------------------------------------------------------------------
# Each landing's data is written once under its own version folder and never overwritten; a small head
# record per partition names the version that is current. Two runs for one day cannot mix their bytes,
# and the newer landing always wins the head (a compare-and-set, see landfall.pipeline.publish).


def raw_key(storage: StorageSettings, partition: str, version: str, file: str = "data.parquet") -> str:
    """A file of a raw version: `data.parquet` for a one-file day, `part-<n>.parquet` for parts."""
    return f"{storage.raw_prefix}/date={partition}/{version}/{file}"


def raw_head_key(storage: StorageSettings, partition: str) -> str:
    return f"{storage.raw_prefix}/date={partition}/_head.json"


def processed_key(storage: StorageSettings, partition: str, version: str, split: str) -> str:
    """Where preprocess writes a raw version's `train`, `validation` or `test` split."""
    return f"{storage.processed_prefix}/date={partition}/{version}/{split}.parquet"


def statistics_key(storage: StorageSettings, partition: str, version: str) -> str:
    """Where preprocess writes a raw version's statistics (`landfall.pipeline.drift`)."""
    return f"{storage.processed_prefix}/date={partition}/{version}/statistics.json"


def drift_report_key(storage: StorageSettings, partition: str, version: str) -> str:
    """Where the drift task writes a processed version's drift report; an `on_drift` train run reads it."""
    return f"{storage.processed_prefix}/date={partition}/{version}/drift_report.json"


def processed_head_key(storage: StorageSettings, partition: str) -> str:
    """Names the processed version of a partition that is current: what training windows read."""
    return f"{storage.processed_prefix}/date={partition}/_head.json"


def canary_expectation_key(canary_key: str, run_id: str) -> str:
    """Beside a partition's canary rows: what one candidate's offline evaluation predicted for them."""
    return f"{canary_key.removesuffix('.parquet')}-expected-{run_id}.json"


def quarantine_folder(storage: StorageSettings, key: str, version: str, partition: str | None) -> str:
    """Where a rejected landing goes: grouped by date when one could be read, else under `unknown`."""
    day = day_of(partition) if partition and _DATE_RE.fullmatch(day_of(partition)) else "unknown"
    return f"{storage.quarantine_prefix}/{day}/{key_digest(key)}-{version}"


# ---- the ledger: the watcher's and ingest's own records ------------------------------------------


# These take the ledger prefix itself: the watcher in the triggerer knows only its own kwargs.


ROOT_FOLDER = ""
"""The folder name of objects directly under the landing prefix (no folder: ingest quarantines them)."""


def folder_manifest(ledger: str, folder: str) -> str:
    """The watcher's manifest of one top-level landing folder: what it reported from there (see
    `landfall.pipeline.landing_ledger`). Named by the date itself, else by a digest of the hostile name."""
    if folder == ROOT_FOLDER:
        name = "_root"
    else:
        name = folder if _DATE_RE.fullmatch(folder) else f"x-{key_digest(folder)}"
    return f"{folders_prefix(ledger)}{name}.json"


def folders_prefix(ledger: str) -> str:
    return f"{ledger}/folders/"


def legacy_seen_prefix(ledger: str) -> str:
    """Before the folder manifests, one marker per reported landing (`seen/<digest>/<version>`): read
    once at start and folded into the manifests, then deleted."""
    return f"{ledger}/seen/"


def batch_record(ledger: str, batch: str) -> str:
    """The watcher's record of a reported batch, kept until an ingest run claims it."""
    return f"{batches_prefix(ledger)}{batch}.json"


def batches_prefix(ledger: str) -> str:
    return f"{ledger}/batches/"


def batch_claim(ledger: str, batch: str) -> str:
    """Written by the ingest run that received the batch's event."""
    return f"{ledger}/claims/{batch}"


def outcome_record(ledger: str, key: str, version: str) -> str:
    """What happened to one landing, written once (first writer wins) by the run that published it."""
    return f"{ledger}/outcomes/{key_digest(key)}/{version}.json"


def last_search_record(ledger: str) -> str:
    """Written by every train run that searched (its time and day): `training.max_age_days` counts from
    it, so a retrained candidate that lost its evaluation, or a rollback to an older version, does not
    make every following day (and each daily freshness run) train again."""
    return f"{ledger}/trained/_last_search.json"


def trained_record(ledger: str, partition: str) -> str:
    """Written by the train run that trained the window ending at `partition` once its best trial is
    chosen (names the version): the days before it no longer wait for that window."""
    return f"{ledger}/trained/{partition}.json"


def rollup_record(storage: StorageSettings, day: str, version: str) -> str:
    """Created once (If-None-Match) by the run that publishes a day rolled up from its hours."""
    return f"{storage.processed_prefix}/date={day}/_rollups/{version}.json"
