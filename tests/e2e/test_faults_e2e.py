"""Fault injection on the real stack: processes die by SIGKILL and S3 goes away, and the pipeline keeps
its promises (nothing lost, nothing twice, nothing half-written)."""

from __future__ import annotations

import io
import time

import pyarrow.parquet as pq
import pytest

from journeys import CHURN, day_key, land, unique_day
from landfall.ops.follow import (
    find_run_for_key,
    follow_landing,
    landing_events_for,
    quarantine_events_for,
    raw_events_for,
    watch_run,
)
from landfall.pipeline.datagen import make_batch, make_corrupt, to_parquet
from landfall.pipeline.publish import current_head

pytestmark = pytest.mark.stack
RUN_TIMEOUT_S = 300
OUTCOME_EVENTS = {"raw_daily": raw_events_for, "quarantine": quarantine_events_for}


def _wait_restarted(stack, name: str, killed_pid: int) -> None:
    """supervisord restarts a crashed component by itself; wait until the new one is healthy."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        status = {c.name: c for c in stack.status()}[name]
        if status.pid and status.pid != killed_pid and status.healthy:
            assert status.restarts >= 1, "the restart is not shown in `landfall status`"
            return
        assert time.monotonic() < deadline, f"{name} was not restarted: {status}"
        time.sleep(1)


def test_triggerer_sigkill_while_files_land_loses_nothing_and_duplicates_nothing(stack, airflow_api):
    # Good files and broken ones: both paths must come out exactly once.
    landed = {}
    for body, outcome in [
        (to_parquet(make_batch(400, seed=31)), "raw_daily"),
        (make_corrupt("schema", seed=32), "quarantine"),
        (make_corrupt("garbage", seed=33), "quarantine"),
    ]:
        put = land(stack, day_key(unique_day(2600)), body)
        landed[put.key] = (put.etag, outcome)
    time.sleep(0.5)  # mid-poll: some of these may be listed, reported or half-acknowledged
    killed = stack.kill("triggerer")
    assert killed, "the triggerer was not running"
    for body, outcome in [(to_parquet(make_batch(400, seed=34)), "raw_daily"), (b"", "quarantine")]:
        put = land(stack, day_key(unique_day(2600)), body)  # lands while the triggerer restarts
        landed[put.key] = (put.etag, outcome)
    _wait_restarted(stack, "triggerer", killed)

    for key, (etag, _) in landed.items():
        assert follow_landing(airflow_api, key, etag, timeout_s=RUN_TIMEOUT_S).state == "success", key
    time.sleep(3 * stack.settings.watcher.poll_interval_s + 2)  # room for a duplicate to show up
    for key, (_, outcome) in landed.items():
        # Delivery of landing events is at-least-once across a crash; what they produce is exactly once.
        assert len(landing_events_for(airflow_api, key)) >= 1, key
        assert len(OUTCOME_EVENTS[outcome](airflow_api, key)) == 1, (key, outcome)
        other = "quarantine" if outcome == "raw_daily" else "raw_daily"
        assert OUTCOME_EVENTS[other](airflow_api, key) == [], key


def test_s3_outage_during_ingest_is_retried_and_leaves_no_partial_objects(stack, airflow_api):
    storage = stack.settings.storage
    day = unique_day(2600)
    put = land(stack, day_key(day), to_parquet(make_batch(3000, seed=41, label_noise=0.15)))
    key, etag = put.key, put.etag
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while (run := find_run_for_key(airflow_api, key, etag)) is None:
        assert time.monotonic() < deadline, "no ingest run for the landing"
        time.sleep(0.2)
    stack.stop("s3")  # S3 disappears while the run works (and stays away: a stop, not a crash)
    time.sleep(8)
    stack.restart("s3")  # back, on the same data
    # The watcher could not acknowledge the object during the outage, so it may report it again (a
    # second landing event): delivery is at-least-once, and ingest makes the effect exactly-once.
    while not raw_events_for(airflow_api, key):
        assert time.monotonic() < deadline, "the landing was never ingested"
        time.sleep(1)
    time.sleep(3 * stack.settings.watcher.poll_interval_s + 2)
    assert len(raw_events_for(airflow_api, key)) == 1
    assert quarantine_events_for(airflow_api, key) == []
    result = watch_run(airflow_api, CHURN.ingest_dag, run["dag_run_id"], deadline)
    assert result.state == "success", result.tasks
    tries = {
        ti["task_id"]: ti["try_number"]
        for ti in airflow_api.task_instances(CHURN.ingest_dag, run["dag_run_id"])
    }
    assert max(tries.values()) >= 2, f"no task needed a retry, so S3 was never missed: {tries}"

    # Whole objects only: the raw partition reads back complete; no multipart upload was left open.
    s3 = stack.s3_client()
    head = current_head(s3, storage, day)
    raw = s3.get_object(
        Bucket=storage.datasets_bucket, Key=head["uri"].removeprefix(f"s3://{storage.datasets_bucket}/")
    )
    assert pq.read_table(io.BytesIO(raw["Body"].read())).num_rows == 3000
    for bucket in (storage.datasets_bucket, storage.xcom_bucket):
        assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    # And the watcher survived the outage: a landing after it still starts a run.
    after = land(stack, day_key(unique_day(2600)), make_corrupt("schema", seed=42))
    assert (
        follow_landing(airflow_api, after.key, after.etag, timeout_s=RUN_TIMEOUT_S).outcome == "quarantined"
    )


def test_scheduler_killed_during_training_recovers_without_a_second_version_or_promotion(stack, airflow_api):
    """SIGKILL of the scheduler takes its LocalExecutor workers, and so the running trials, with it."""
    from mlflow import MlflowClient

    from landfall.ops.follow import follow_partition

    day = unique_day(2600)
    put = land(stack, day_key(day), to_parquet(make_batch(5000, seed=51)))
    ingest = follow_landing(airflow_api, put.key, put.etag, timeout_s=RUN_TIMEOUT_S)
    assert ingest.outcome == "ingested"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    train_run = None
    while True:  # until a trial of this partition's training run is running
        assert time.monotonic() < deadline, "training never started"
        runs = [r for r in airflow_api.dag_runs(CHURN.train_dag, limit=20) if r.get("partition_key") == day]
        if runs:
            train_run = runs[0]["dag_run_id"]
            states = [
                ti["state"]
                for ti in airflow_api.task_instances(CHURN.train_dag, train_run)
                if ti["task_id"].endswith("train_trial")
            ]
            if "running" in states:
                break
        time.sleep(0.5)
    killed = stack.kill("scheduler")
    assert killed
    _wait_restarted(stack, "scheduler", killed)  # a new scheduler finds the dead one's tasks, runs them again

    runs = {
        dag_id: follow_partition(airflow_api, dag_id, day, ingest.queued_at, RUN_TIMEOUT_S)
        for dag_id in CHURN.after_ingest
    }
    assert runs[CHURN.train_dag].run_id == train_run
    assert [r.state for r in runs.values()] == ["success"] * 4, {d: r.tasks for d, r in runs.items()}
    candidate = [e for e in airflow_api.events_of(CHURN.model_candidate) if e.get("partition_key") == day]
    assert len(candidate) == 1
    run_id = candidate[0]["extra"]["run_id"]
    versions = MlflowClient().search_model_versions(f"name = '{stack.settings.mlflow.model_name}'")
    assert len([v for v in versions if v.run_id == run_id]) <= 1, "the candidate was registered twice"
    promoted = [e for e in airflow_api.events_of(CHURN.production_model) if e.get("partition_key") == day]
    assert len(promoted) <= 1, "the alias moved twice"
