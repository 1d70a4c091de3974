"""A `LandingWatch` over a test's private landing prefix (the `area` fixture), with knobs overridden."""

from __future__ import annotations

from typing import Any

from landfall.airflow.triggers.landing_watch import LandingWatch
from landfall.core.shared_settings import WatcherSettings


def watch_of(area: dict[str, Any], **knobs: Any) -> LandingWatch:
    """`knobs` are `WatcherSettings` fields, taken as given (a test may go below a setting's bound,
    e.g. a retention of one second)."""
    tuned = {"poll_interval_s": area["poll_interval"], "requeue_after_s": area["requeue_after_s"], **knobs}
    return LandingWatch(
        bucket=area["bucket"],
        prefixes=(area["prefix"],),
        ledger_prefix=area["ledger_prefix"],
        aws_conn_id=area["aws_conn_id"],
        knobs=WatcherSettings().model_copy(update=tuned),
    )
