"""Deadline alerts as Airflow stores them (reference, interval, callback path), and what their callbacks
deliver: a `late` alert naming the DAG and run, or the day whose landing is missing. The end-to-end
proof through the scheduler and triggerer is tests/e2e/test_deadlines_e2e.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta

import pytest

from journeys import CHURN
from landfall.airflow import deadlines
from landfall.airflow.deadline_sensor import DeadlineSensor


def test_the_freshness_deadline_is_expected_by_after_the_runs_midnight():
    alert = deadlines.freshness_deadline("churn", time(6, 30))
    assert alert.interval == timedelta(hours=6, minutes=30)
    assert type(alert.reference).__name__ == "DagRunLogicalDateDeadline"
    assert alert.callback.path == "landfall.airflow.deadlines.landing_missing"
    assert alert.callback.kwargs == {"pipeline": "churn", "expected_by": "06:30:00"}
    assert deadlines.watched_day(datetime(2026, 11, 26, tzinfo=UTC)) == "2026-11-25"


def test_the_chain_deadline_counts_from_when_the_run_was_queued():
    alert = deadlines.chain_deadline(1.5)
    assert alert.interval == timedelta(seconds=90)
    assert type(alert.reference).__name__ == "DagRunQueuedAtDeadline"
    assert alert.callback.kwargs == {"deadline_minutes": 1.5}


def _context(**run) -> dict:
    due = datetime.now(UTC) - timedelta(seconds=3)
    return {"dag_run": run, "deadline": {"id": "x", "deadline_time": due.isoformat()}}


def test_a_late_chain_run_is_reported_by_dag_and_run(alerts):
    context = _context(dag_id=CHURN.train_dag, dag_run_id="asset_triggered__x", state="running")
    asyncio.run(deadlines.chain_run_late(context, deadline_minutes=60))
    [late] = [a for a in alerts.of_kind("late") if a["details"].get("run_id") == "asset_triggered__x"]
    assert f"{CHURN.train_dag} run asset_triggered__x has not succeeded within 60 min" in late["text"]
    assert late["details"]["alert_delay_s"] >= 3


def test_a_missing_landing_is_reported_by_day(alerts, monkeypatch):
    monkeypatch.setattr(deadlines, "_published", lambda pipeline, day: False)
    context = _context(
        dag_id=CHURN.freshness_dag, dag_run_id="manual__y", logical_date="2026-03-02T00:00:00Z"
    )
    asyncio.run(deadlines.landing_missing(context, expected_by="06:00:00", pipeline="churn"))
    [late] = [a for a in alerts.of_kind("late") if a["details"].get("run_id") == "manual__y"]
    assert late["details"]["day"] == "2026-03-01"
    assert "The landing of 2026-03-01 has not been ingested by 06:00:00 UTC" in late["text"]


def test_a_day_whose_raw_partition_is_there_is_not_late(alerts, monkeypatch):
    looked_for: list[str] = []
    monkeypatch.setattr(
        deadlines, "_published", lambda pipeline, day: looked_for.append(f"{pipeline} {day}") or True
    )
    context = _context(
        dag_id=CHURN.freshness_dag, dag_run_id="manual__z", logical_date="2026-03-05T00:00:00Z"
    )
    asyncio.run(deadlines.landing_missing(context, expected_by="06:00:00", pipeline="churn"))
    assert looked_for == ["churn 2026-03-04"]
    assert [a for a in alerts.of_kind("late") if a["details"].get("run_id") == "manual__z"] == []


def test_the_deadline_sensor_does_not_defer_to_a_moment_that_has_passed():
    """A freshness run of a past day: deferring would fire at once, and Airflow 3.3 can then fail the
    resumed task on a busy scheduler; a future deadline still waits in the triggerer."""
    from airflow.sdk.exceptions import TaskDeferred

    past = DeadlineSensor(task_id="past", target_time="1647-01-12T06:00:00+00:00")
    assert past.execute({}) is None
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    with pytest.raises(TaskDeferred):
        DeadlineSensor(task_id="future", target_time=future).execute({})
