"""Reading the asset events that started a run: only events raised by the asset's own producer count.

An asset event can be posted by anyone with the REST API's asset permission (`POST /api/v2/assets/events`)
or raised by any task that lists the asset as an outlet. Landfall's consumers act only on events whose
source is the producer task named in `landfall.core.catalog` (`Chain.producers`); the others are
refused, logged and alerted, and never read, trained on or promoted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from landfall.core.catalog import producers_of
from landfall.pipeline.alerts import Alerts

log = logging.getLogger(__name__)


def trusted_events(events: Iterable[Any], asset_name: str, alerts: Alerts | None = None) -> list[Any]:
    """The events of `asset_name` raised by its producer task; every other one is reported."""
    producers = {tuple(producer) for producer in producers_of(asset_name)}
    trusted, refused = [], []
    for event in events:
        source = (getattr(event, "source_dag_id", None), getattr(event, "source_task_id", None))
        (trusted if source in producers else refused).append(event)
    for event in refused:
        source = f"{getattr(event, 'source_dag_id', None)}.{getattr(event, 'source_task_id', None)}"
        text = (
            f"Refused a {asset_name!r} event from {source} "
            f"(partition {getattr(event, 'partition_key', None)}): "
            f"only {' or '.join(f'{p.dag_id}.{p.task_id}' for p in producers_of(asset_name))} raises it; "
            "it was not acted on"
        )
        log.error(text)
        if alerts is not None:
            alerts.send("forged_event", text, {"asset": asset_name, "source": source})
    return trusted


def latest_event_extra(
    events: list[Any], asset_name: str, partition: str | None, alerts: Alerts | None = None
) -> dict[str, Any]:
    """The extra of the newest trusted event for this run's partition (events can merge into one run)."""
    trusted = trusted_events(events, asset_name, alerts)
    matching = [
        e for e in trusted if partition is None or getattr(e, "partition_key", None) in (None, partition)
    ]
    if not matching:
        # Permanent: retrying cannot make an event appear, so fail at once (no retries). A run
        # triggered by hand, whatever its conf says, has no event and so can neither train nor deploy.
        from airflow.sdk.exceptions import AirflowFailException

        refused = len(events) - len(trusted)
        raise AirflowFailException(
            f"no {asset_name!r} event from its producer for partition {partition!r}"
            + (f" ({refused} event(s) from elsewhere were refused)" if refused else "")
            + "; this DAG runs when its upstream Asset is updated by the pipeline, not by hand "
            "(re-process history with `airflow backfill create` on the pipeline's ingest DAG)"
        )
    newest = max(matching, key=lambda e: e.timestamp)
    return dict(newest.extra or {})
