"""A `LandingWatch` over a test's private landing prefix (the `area` fixture), with knobs overridden."""

from __future__ import annotations

from typing import Any

from landfall.airflow.triggers.landing_watch import LandingWatch, WatchedPrefix
from landfall.core.shared_settings import WatcherSettings


def watch_of(area: dict[str, Any], *others: dict[str, Any], **knobs: Any) -> LandingWatch:
    """`knobs` are `WatcherSettings` fields, taken as given (a test may go below a setting's bound,
    e.g. a retention of one second). Each area is one pipeline, named `area["pipeline"]` (`test` unset);
    `others` share the stream with the first."""
    tuned = {"poll_interval_s": area["poll_interval"], "requeue_after_s": area["requeue_after_s"], **knobs}
    return LandingWatch(
        bucket=area["bucket"],
        prefixes=tuple(
            WatchedPrefix(
                pipeline=one.get("pipeline", "test"), prefix=one["prefix"], ledger_prefix=one["ledger_prefix"]
            )
            for one in (area, *others)
        ),
        aws_conn_id=area["aws_conn_id"],
        knobs=WatcherSettings().model_copy(update=tuned),
    )


def second_area(area: dict[str, Any], pipeline: str) -> dict[str, Any]:
    """Another pipeline's landing prefix and ledger beside `area`'s, in the same bucket."""
    root = area["prefix"].rsplit("/", 1)[0]
    return {
        **area,
        "pipeline": pipeline,
        "prefix": f"{root}/{pipeline}",
        "ledger_prefix": f"{root}/ledger-{pipeline}",
    }
