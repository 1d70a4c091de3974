"""What the landing watcher watches and how: one object carries every setting of the watcher.

`LandingWatch` is built once from the project's settings (`LandingWatch.of_pipelines`), passed whole to
every pipeline's trigger in the DAG files, serialized into the triggers' kwargs as plain JSON (the
metadata database stores them; `BaseEventTrigger` kwargs must serialize) and rebuilt, validated again, in
the triggerer. The knobs are `WatcherSettings` itself, so each one is named, defaulted and bounded in one
place (`landfall.core.shared_settings`).

Every pipeline's landing prefix is in the one watch (`prefixes`, one `WatchedPrefix` each, with its own
ledger), so all pipelines share one stream: one S3 client, one poll loop and, in queue mode, one queue.
The shared-stream key is the whole object: two triggers share one stream only when every setting that
shapes what the stream reports is the same (the triggerer builds the stream from the first trigger's
kwargs, so a key that left a setting out would hand the second trigger a stream built with the first's).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from landfall.core.shared_settings import WatcherSettings

if TYPE_CHECKING:
    from collections.abc import Iterable

    from landfall.core.settings import Settings
    from landfall.pipeline.landing import PartRule

STREAM = "landfall-s3-landing"


class WatchedPrefix(BaseModel):
    """One pipeline's landing prefix and the ledger where the watcher records what it reported there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pipeline: str
    prefix: str
    ledger_prefix: str
    part_glob: str | None = None  # with `marker`: part files wait for their folder's marker
    marker: str | None = None

    @field_validator("prefix", "ledger_prefix")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip("/")

    def parts(self) -> PartRule | None:
        from landfall.pipeline.landing import PartRule

        return PartRule(self.part_glob, self.marker) if self.part_glob and self.marker else None

    def owns(self, key: str) -> bool:
        return key.startswith(self.prefix + "/")


class LandingWatch(BaseModel):
    """The bucket, every pipeline's landing prefix, and the watcher's knobs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str
    prefixes: tuple[WatchedPrefix, ...] = Field(min_length=1)
    aws_conn_id: str | None = "aws_default"
    knobs: WatcherSettings = WatcherSettings()

    @model_validator(mode="after")
    def _apart(self) -> LandingWatch:
        # The config refuses overlapping prefixes already (`landfall check`); here it guards the stream
        # itself: a key under two prefixes would be reported, and ingested, by two pipelines.
        names = [watched.pipeline for watched in self.prefixes]
        if len(set(names)) != len(names):
            raise ValueError(f"a pipeline is watched twice: {names}")
        for one in self.prefixes:
            for other in self.prefixes:
                if one is not other and (one.owns(other.prefix + "/") or one.prefix == other.prefix):
                    raise ValueError(f"landing prefixes overlap: {one.prefix!r} and {other.prefix!r}")
        return self

    @classmethod
    def of_pipelines(cls, pipelines: Iterable[Settings]) -> LandingWatch:
        """One watch over every pipeline's landing prefix. The bucket, the AWS connection and the watcher
        knobs are project-wide settings, the same in each pipeline's `Settings`."""
        pipelines = list(pipelines)
        first = pipelines[0]
        return cls(
            bucket=first.storage.datasets_bucket,
            prefixes=tuple(
                WatchedPrefix(
                    pipeline=settings.pipeline,
                    prefix=settings.storage.landing_prefix,
                    ledger_prefix=settings.storage.ledger_prefix,
                    part_glob=settings.storage.landing_part_glob,
                    marker=settings.storage.landing_marker,
                )
                for settings in pipelines
            ),
            aws_conn_id=first.storage.aws_conn_id,
            knobs=first.watcher,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> LandingWatch:
        """A watch of one pipeline alone."""
        return cls.of_pipelines([settings])

    def pipelines(self) -> list[str]:
        return [watched.pipeline for watched in self.prefixes]

    def of(self, pipeline: str) -> WatchedPrefix:
        for watched in self.prefixes:
            if watched.pipeline == pipeline:
                return watched
        raise KeyError(f"pipeline {pipeline!r} is not watched here (watched: {', '.join(self.pipelines())})")

    @property
    def queue_url(self) -> str | None:
        """Where bucket notifications come from in queue mode; None in list mode."""
        return self.knobs.queue_url if self.knobs.mode == "queue" else None

    def as_kwargs(self) -> dict[str, Any]:
        """Plain JSON values (tuples become lists): what the trigger's kwargs carry."""
        return self.model_dump(mode="json")

    def stream_key(self) -> tuple[str, str]:
        return STREAM, json.dumps(self.as_kwargs(), sort_keys=True, separators=(",", ":"))
