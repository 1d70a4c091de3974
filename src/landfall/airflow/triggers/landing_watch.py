"""What the landing watcher watches and how: one object carries every setting of the watcher.

`LandingWatch` is built once from the settings (`LandingWatch.from_settings`), passed whole to the
trigger in the DAG file, serialized into the trigger's kwargs as plain JSON (the metadata database
stores them; `BaseEventTrigger` kwargs must serialize) and rebuilt, validated again, in the triggerer.
The knobs are `WatcherSettings` itself, so each one is named, defaulted and bounded in one place
(`landfall.core.shared_settings`).

The shared-stream key is the whole object: two triggers share one stream only when every setting that
shapes what the stream reports is the same (the triggerer builds the stream from the first trigger's
kwargs, so a key that left a setting out would hand the second trigger a stream built with the first's).

`prefixes` is a tuple so that several landing prefixes (one per pipeline) can share one stream; the
watcher lists one today.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from landfall.core.shared_settings import WatcherSettings

if TYPE_CHECKING:
    from landfall.core.settings import Settings
    from landfall.pipeline.landing import PartRule

STREAM = "landfall-s3-landing"


class LandingWatch(BaseModel):
    """Where the landings are, where the watcher's ledger is, and the watcher's knobs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str
    # One per pipeline when pipelines share the stream; the watcher takes one today (its ledger is one
    # manifest per day folder, and two prefixes' days would share those names).
    prefixes: tuple[str, ...] = Field(min_length=1, max_length=1)
    ledger_prefix: str
    aws_conn_id: str | None = "aws_default"
    part_glob: str | None = None  # with `marker`: part files wait for their folder's marker
    marker: str | None = None
    knobs: WatcherSettings = WatcherSettings()

    @field_validator("prefixes", mode="before")
    @classmethod
    def _strip_prefixes(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = (value,)
        return tuple(str(prefix).strip("/") for prefix in value)

    @field_validator("ledger_prefix")
    @classmethod
    def _strip_ledger(cls, value: str) -> str:
        return value.strip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> LandingWatch:
        storage = settings.storage
        return cls(
            bucket=storage.datasets_bucket,
            prefixes=(storage.landing_prefix,),
            ledger_prefix=storage.ledger_prefix,
            aws_conn_id=storage.aws_conn_id,
            part_glob=storage.landing_part_glob,
            marker=storage.landing_marker,
            knobs=settings.watcher,
        )

    @property
    def prefix(self) -> str:
        """The landing prefix (one today)."""
        return self.prefixes[0]

    @property
    def queue_url(self) -> str | None:
        """Where bucket notifications come from in queue mode; None in list mode."""
        return self.knobs.queue_url if self.knobs.mode == "queue" else None

    def parts(self) -> PartRule | None:
        from landfall.pipeline.landing import PartRule

        return PartRule(self.part_glob, self.marker) if self.part_glob and self.marker else None

    def as_kwargs(self) -> dict[str, Any]:
        """Plain JSON values (tuples become lists): what the trigger's kwargs carry."""
        return self.model_dump(mode="json")

    def stream_key(self) -> tuple[str, str]:
        return STREAM, json.dumps(self.as_kwargs(), sort_keys=True, separators=(",", ":"))
