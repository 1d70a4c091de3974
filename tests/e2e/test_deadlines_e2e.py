"""Deadline alerts through the real scheduler and triggerer, delivered to the webhook receiver:

* freshness: a freshness run whose day never landed alerts, naming the day, once
  `landing.expected_by` has passed; a run whose day was ingested succeeds (its deadline is dropped);
* chain: a chain DAG run that has not succeeded within `deploy.deadline_minutes` (1.5 in the test
  stack) alerts, naming the DAG and the run.

The freshness run's logical date is chosen so that its deadline falls a few seconds from now.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta

import pytest

from journeys import CHURN, day_key, finished_run, land, unique_day, wait_for
from landfall.airflow.deadlines import watched_day
from landfall.ops.follow import follow_landing
from landfall.pipeline.datagen import make_batch, to_parquet
from landfall.pipeline.keys import raw_head_key

pytestmark = pytest.mark.stack


def _late(alerts, **details) -> list[dict]:
    return [a for a in alerts.of_kind("late") if all(a["details"].get(k) == v for k, v in details.items())]


def _after_midnight(expected_by: time) -> timedelta:
    return timedelta(hours=expected_by.hour, minutes=expected_by.minute, seconds=expected_by.second)


def test_a_missing_day_and_a_stuck_chain_run_each_raise_a_late_alert_naming_it(
    stack, airflow_api, alerts, settings
):
    os.environ.update(stack.environment())
    # A chain run that cannot succeed: deploy triggered by hand has no evaluation event to act on.
    stuck = airflow_api.trigger(CHURN.deploy_dag, {})
    # Freshness: a run whose deadline (logical date + expected_by) is 20 s away; its day never landed.
    due = datetime.now(UTC) + timedelta(seconds=20)
    logical = due - _after_midnight(settings.landing.expected_by)
    day = watched_day(logical)
    head = raw_head_key(settings.storage, day)
    assert "Contents" not in stack.s3_client().list_objects_v2(
        Bucket=settings.storage.datasets_bucket, Prefix=head
    ), f"{day} has landed in this stack; the test needs a day that has not"
    missing = airflow_api.trigger(CHURN.freshness_dag, {}, logical_date=logical)

    # A day that did land and was ingested: its freshness run finds the raw partition and succeeds.
    # A past day: the scheduler does not start a run whose logical date is in the future.
    landed_day = unique_day(1700)
    landed = land(stack, day_key(landed_day), to_parquet(make_batch(600, seed=951)))
    assert follow_landing(airflow_api, landed.key, landed.etag, timeout_s=300).outcome == "ingested"
    next_midnight = datetime.combine(date.fromisoformat(landed_day) + timedelta(days=1), time(), UTC)
    present = airflow_api.trigger(CHURN.freshness_dag, {}, logical_date=next_midnight)
    done = finished_run(
        airflow_api, CHURN.freshness_dag, lambda r: r["dag_run_id"] == present["dag_run_id"], 300
    )
    assert done["state"] == "success"

    [late_day] = wait_for(lambda: _late(alerts, day=day), 120, f"a late alert for {day}")
    assert f"The landing of {day} has not been ingested by" in late_day["text"]
    assert late_day["details"]["run_id"] == missing["dag_run_id"]
    assert _late(alerts, day=landed_day) == []

    [late_run] = wait_for(
        lambda: _late(alerts, run_id=stuck["dag_run_id"]), 240, "a late alert for the stuck run"
    )
    assert (
        f"{CHURN.deploy_dag} run {stuck['dag_run_id']} has not succeeded within 1.5 min" in late_run["text"]
    )
    print(
        f"\nlate alerts after their deadlines: freshness {late_day['details']['alert_delay_s']} s, "
        f"chain {late_run['details']['alert_delay_s']} s"
    )
