"""Deadlines, with Airflow 3's deadline alerts: the scheduler records a deadline for each run, drops it
when the run succeeds, and when the deadline passes first the triggerer runs the callback here, which
sends a `late` alert (webhook) naming what is late.

* Chain: every run of a chain DAG (ingest, preprocess, train, evaluate, deploy) must succeed within
  `deploy.deadline_minutes` of being queued. A stuck, failing or starved run is reported by DAG and run.
* Freshness: a pipeline's freshness run of day X waits for the landing of day X-1 to be published as
  raw data; its deadline is X + `landing.expected_by` (e.g. 06:00 UTC), and missing it names the day.
  The callback looks for the raw partition itself before alerting: the sensor pokes once a minute and a
  run created after its deadline (a manual run for a past day) fires at once, but a day that is there
  is not late.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, time, timedelta
from typing import Any

from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

log = logging.getLogger(__name__)


def chain_deadline(minutes: float) -> DeadlineAlert:
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=minutes),
        callback=AsyncCallback(chain_run_late, kwargs={"deadline_minutes": minutes}),
        name="chain_deadline",
    )


def freshness_deadline(pipeline: str, expected_by: time) -> DeadlineAlert:
    after_midnight = timedelta(hours=expected_by.hour, minutes=expected_by.minute, seconds=expected_by.second)
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=after_midnight,
        callback=AsyncCallback(
            landing_missing, kwargs={"pipeline": pipeline, "expected_by": expected_by.isoformat()}
        ),
        name="landing_freshness",
    )


def watched_day(logical_date: datetime) -> str:
    """The day whose landing the freshness run of `logical_date` waits for: the day before."""
    return (logical_date - timedelta(days=1)).date().isoformat()


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def _delay(context: dict[str, Any]) -> float | None:
    deadline = _parse((context.get("deadline") or {}).get("deadline_time"))
    return None if deadline is None else round((datetime.now(UTC) - deadline).total_seconds(), 1)


async def _send(kind: str, text: str, details: dict[str, Any]) -> None:
    from landfall.core.settings import get_project
    from landfall.pipeline.alerts import Alerts

    alerts = Alerts(get_project(strict=False).notify.webhook_url)
    await asyncio.to_thread(alerts.send, kind, text, details)


async def chain_run_late(context: dict[str, Any], deadline_minutes: float) -> None:
    run = context.get("dag_run") or {}
    dag_id, run_id = run.get("dag_id"), run.get("dag_run_id") or run.get("run_id")
    text = (
        f"{dag_id} run {run_id} has not succeeded within {deadline_minutes:g} min of being queued "
        f"(state {run.get('state')}, partition {run.get('partition_key')}): see its tasks in the Airflow UI"
    )
    await _send(
        "late",
        text,
        {
            "dag_id": dag_id,
            "run_id": run_id,
            "state": run.get("state"),
            "queued_at": run.get("queued_at"),
            "alert_delay_s": _delay(context),
        },
    )


def _published(pipeline: str | None, day: str) -> bool | None:
    """Whether a raw partition of `day` (the day's, or one of its hours') is there; None when S3 could
    not say (then the alert goes out). A day landed hour by hour with hours missing is rolled up and
    alerted by the freshness run's own task, naming the hours."""
    from landfall.airflow.tasks.rollup import raw_heads

    try:
        return any(raw_heads(pipeline, day))
    except Exception as error:  # S3 away, or its connection cannot be resolved: alert anyway
        log.warning("could not look for the raw partition of %s: %s", day, error)
        return None


async def landing_missing(context: dict[str, Any], expected_by: str, pipeline: str | None = None) -> None:
    # `pipeline` is None in a deadline recorded before pipelines: the project's only one.
    run = context.get("dag_run") or {}
    logical = _parse(run.get("logical_date"))
    day = watched_day(logical) if logical else "?"
    if logical and await asyncio.to_thread(_published, pipeline, day):
        log.info("the raw partition of %s is there: not late", day)
        return
    text = (
        f"The landing of {day} has not been ingested by {expected_by} UTC the day after "
        "(landing.expected_by): nothing valid arrived, or it is quarantined or still in the chain"
    )
    await _send(
        "late",
        text,
        {
            "day": day,
            "pipeline": pipeline,
            "dag_id": run.get("dag_id"),
            "run_id": run.get("dag_run_id"),
            "alert_delay_s": _delay(context),
        },
    )
