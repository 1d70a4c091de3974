"""Hourly landings through the real stack: a day landed hour by hour (`daily/<day>/<HH>/...`) is ingested
and prepared per hour and trains once, as one day; a day whose hours are not all there by its deadline
trains on the hours there, with the missing ones named in the training run and in an alert; a day whose
hours together fail the whole-day checks is quarantined, not trained (here at its deadline, three hours:
tests/integration/test_hourly_rollup_on_seaweedfs.py refuses a complete day of 24 such hours, and the
checks are the same function for both; 21 fewer hours to prepare saved about a minute of the suite)."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple

import pytest

from journeys import CHURN, finished_run, partition_events, unique_day, wait_for
from landfall.ops.follow import follow_partition
from landfall.ops.landings import land_day, land_parts
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.datagen import make_batch, to_parquet
from landfall.pipeline.keys import hours_of, processed_head_key
from landfall.pipeline.publish import quarantine_records

pytestmark = pytest.mark.stack
TIMEOUT_S = 600


def _runs(api, dag_id: str, prefix: str) -> list[dict]:
    return [r for r in api.dag_runs(dag_id, limit=200) if (r.get("partition_key") or "").startswith(prefix)]


def _trials(stack, train_run_id: str):
    import mlflow

    return mlflow.search_runs(
        experiment_names=[stack.settings.mlflow.experiment],
        filter_string=f"tags.`landfall.airflow_run_id` = '{train_run_id}'",
    )


class HourlyDays(NamedTuple):
    full: date  # 24 hours, one of them landed as parts completed by its marker
    partial: date  # hours 00-02 only
    one_class: date  # hours 00-02 of 3 one-class rows each: each hour fine, the day not
    started: datetime


@pytest.fixture(scope="module")
def hourly_days(launcher) -> HourlyDays:
    """Every day of this module lands at once, so their 30 hours are prepared side by side, not in turn."""
    stack = launcher
    stack.up()  # what the (per-test) `stack` fixture does, once for the module
    os.environ.update(stack.environment())
    s3, storage = stack.s3_client(), stack.settings.storage
    days = HourlyDays(
        date.fromisoformat(unique_day(1500)),
        date.fromisoformat(unique_day(1600)),
        date.fromisoformat(unique_day(1700)),
        datetime.now(UTC),
    )
    label = stack.settings.landing.label
    for hour in range(24):
        body = to_parquet(make_batch(300, seed=8000 + hour))
        if hour == 5:  # one hour lands as parts completed by its marker
            land_parts(s3, storage, days.full, [body, to_parquet(make_batch(200, seed=8100))], hour=hour)
        else:
            land_day(s3, storage, days.full, body, hour=hour)
    for hour in (0, 1, 2):
        land_day(s3, storage, days.partial, to_parquet(make_batch(400, seed=8200 + hour)), hour=hour)
        one_class = make_batch(3, seed=8300 + hour)
        one_class[label] = 0
        land_day(s3, storage, days.one_class, to_parquet(one_class), hour=hour)
    return days


def test_an_hourly_day_trains_once_and_a_partial_day_trains_at_its_deadline(
    stack, airflow_api, alerts, hourly_days
):
    s3, storage = stack.s3_client(), stack.settings.storage
    full, partial, started = hourly_days.full, hourly_days.partial, hourly_days.started

    # The complete day: one training run for the day, none for an hour.
    train = follow_partition(airflow_api, CHURN.train_dag, full.isoformat(), started, TIMEOUT_S)
    assert train.state == "success" and train.tasks["select_best"] == "success", train.tasks
    prepared = _runs(airflow_api, CHURN.preprocess_dag, full.isoformat())
    assert sorted(r["partition_key"] for r in prepared) == hours_of(full.isoformat())
    assert [r["partition_key"] for r in _runs(airflow_api, CHURN.train_dag, full.isoformat())] == [
        full.isoformat()
    ]
    hour_rows = [
        s3ops.get_json(s3, storage.datasets_bucket, processed_head_key(storage, hour))[0]["rows_train"]
        for hour in hours_of(full.isoformat())
    ]
    trials = _trials(stack, train.run_id)
    assert set(trials["params.train_rows"]) == {str(sum(hour_rows))}
    assert set(trials["params.train_partitions"]) == {"1"}

    # The partial day: its three hours are prepared, then nothing trains until its deadline. Its
    # freshness run (a past day: the deadline has passed) rolls up the hours there.
    wait_for(
        lambda: (
            len(
                [
                    r
                    for r in _runs(airflow_api, CHURN.preprocess_dag, partial.isoformat())
                    if r["state"] == "success"
                ]
            )
            == 3
        ),
        TIMEOUT_S,
        "the partial day's three hours prepared",
    )
    assert _runs(airflow_api, CHURN.train_dag, partial.isoformat()) == []
    midnight = datetime.combine(partial + timedelta(days=1), time(), UTC)
    freshness = airflow_api.trigger(CHURN.freshness_dag, {}, logical_date=midnight)
    done = finished_run(
        airflow_api, CHURN.freshness_dag, lambda r: r["dag_run_id"] == freshness["dag_run_id"], TIMEOUT_S
    )
    assert done["state"] == "success"
    late = follow_partition(airflow_api, CHURN.train_dag, partial.isoformat(), started, TIMEOUT_S)
    assert late.state == "success" and late.tasks["select_best"] == "success", late.tasks
    missing = ",".join(f"{hour:02d}" for hour in range(3, 24))
    assert set(_trials(stack, late.run_id)["tags.landfall.missing_hours"]) == {missing}
    [alert] = wait_for(
        lambda: [a for a in alerts.of_kind("missing_hours") if a["details"]["day"] == partial.isoformat()],
        60,
        "the missing-hours alert",
    )
    assert alert["details"]["missing_hours"] == [f"{hour:02d}" for hour in range(3, 24)]
    head = s3ops.get_json(s3, storage.datasets_bucket, processed_head_key(storage, partial.isoformat()))[0]
    assert head["hours"] == hours_of(partial.isoformat())[:3] and len(head["missing_hours"]) == 21


def test_a_day_of_one_class_hours_is_quarantined_naming_its_hours_and_never_trains(
    stack, airflow_api, alerts, hourly_days
):
    """Three hours of 3 rows of one class (9 rows), rolled up at the day's deadline: each hour is fine, the
    day is not (too few rows, one class), exactly as if it had landed as one daily file."""
    s3, storage = stack.s3_client(), stack.settings.storage
    day = hourly_days.one_class
    hours = hours_of(day.isoformat())[:3]
    wait_for(
        lambda: (
            len(
                [
                    r
                    for r in _runs(airflow_api, CHURN.preprocess_dag, day.isoformat())
                    if r["state"] in ("success", "failed")
                ]
            )
            == 3
        ),
        TIMEOUT_S,
        "the day's three hours prepared",
    )
    midnight = datetime.combine(day + timedelta(days=1), time(), UTC)
    airflow_api.trigger(CHURN.freshness_dag, {}, logical_date=midnight)

    [alert] = wait_for(
        lambda: [a for a in alerts.of_kind("quarantine") if a["details"].get("day") == day.isoformat()],
        TIMEOUT_S,
        "the refused day's quarantine alert",
    )
    assert alert["details"]["hours"] == ["00", "01", "02"]
    assert {p["code"] for p in alert["details"]["problems"]} == {"too_few_rows", "single_class_label"}
    folder = alert["details"]["quarantine_uri"].removeprefix(f"s3://{storage.datasets_bucket}/")
    reason = s3ops.get_json(s3, storage.datasets_bucket, f"{folder}reason.json")[0]
    assert reason["partition"] == day.isoformat() and reason["hours"] == hours
    [event] = [
        e
        for e in airflow_api.events_of(CHURN.quarantine)
        if any(r.get("partition_date") == day.isoformat() for r in quarantine_records(e.get("extra")))
    ]
    assert event["source_task_id"] == "report_refused_day"

    # The day never became a training dataset, so nothing trained on it.
    assert partition_events(airflow_api, CHURN.training_dataset, day.isoformat()) == []
    assert _runs(airflow_api, CHURN.train_dag, day.isoformat()) == []
    assert s3ops.get_json(s3, storage.datasets_bucket, processed_head_key(storage, day.isoformat())) is None
