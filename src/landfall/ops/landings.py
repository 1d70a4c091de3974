"""Landing files the way a producer does: one PUT into the landing prefix. The CLI (`landfall land`,
`landfall demo`), the benchmark and the end-to-end tests all land through here."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from landfall.core.shared_settings import StorageSettings
from landfall.pipeline.keys import landing_key, marker_key, part_key


@dataclass(frozen=True)
class Landed:
    bucket: str
    key: str
    etag: str
    bytes: int
    put_at: float  # epoch seconds, just before the PUT

    @property
    def day(self) -> str:
        return next(part for part in self.key.split("/") if len(part) == 10 and part[4] == "-")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def put_landing(s3: Any, bucket: str, key: str, body: bytes) -> Landed:
    put_at = time.time()
    etag = str(s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]).strip('"')
    return Landed(bucket, key, etag, len(body), put_at)


def land_day(s3: Any, storage: StorageSettings, day: date, body: bytes, hour: int | None = None) -> Landed:
    """A day's file at its canonical key, `<landing_prefix>/<day>/<landing_filename>` (or an hour's, in
    `<landing_prefix>/<day>/<HH>/`)."""
    return put_landing(s3, storage.datasets_bucket, landing_key(storage, day, hour), body)


def land_parts(
    s3: Any, storage: StorageSettings, day: date, bodies: Iterable[bytes], hour: int | None = None
) -> list[Landed]:
    """A multi-part day (or hour) as Spark writes one: `part-00000.parquet ...`, then the `_SUCCESS`
    marker (empty), which is what starts its ingestion. The marker is the last item returned."""
    landed = [
        put_landing(s3, storage.datasets_bucket, part_key(storage, day, index, hour), body)
        for index, body in enumerate(bodies)
    ]
    landed.append(put_landing(s3, storage.datasets_bucket, marker_key(storage, day, hour), b""))
    return landed
