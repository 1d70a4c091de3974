"""The freshness DAG's wait for a day's deadline (kept apart from `deadlines`, which every chain DAG file
imports: only the freshness DAG pays for the sensor's import)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync

log = logging.getLogger(__name__)


class DeadlineSensor(DateTimeSensorAsync):
    """Waits for `target_time` in the triggerer, or not at all when it has passed already (a catch-up or
    manual run of a past day). Deferring to a moment that has passed makes the trigger fire at once, and
    on a loaded scheduler Airflow 3.3 may then take the first try's exit ("finished with state success")
    for the resumed one's and fail the task (seen in CI on a freshness run of a past day)."""

    def execute(self, context: Any) -> None:
        if datetime.now(UTC) >= self._moment:
            log.info("%s has passed: not waiting", self._moment.isoformat())
            return None
        super().execute(context)
