"""End to end on the real embedded stack: SeaweedFS, MLflow and Airflow 3 processes on 127.0.0.1.

A file PUT into S3 must start the ingest DAG through the triggerer by itself; these tests only land
files and observe through the Airflow REST API v2 and S3.
"""

from __future__ import annotations

import time

import pytest

from hostile_inputs import HOSTILE_INPUTS, key_for
from journeys import CHURN, day_key, land, unique_day
from landfall.ops.follow import follow_landing, landing_events_for, quarantine_events_for, raw_events_for
from landfall.pipeline.datagen import make_batch, to_parquet
from landfall.pipeline.publish import quarantine_records, raw_partitions

pytestmark = pytest.mark.stack
RUN_TIMEOUT_S = 240


def test_a_good_file_is_ingested_and_published_as_the_raw_partition(stack, airflow_api):
    day = unique_day(2100)
    landed = land(stack, day_key(day), to_parquet(make_batch(2000, seed=11)))
    result = follow_landing(airflow_api, landed.key, landed.etag, timeout_s=RUN_TIMEOUT_S)
    print(f"\nPUT -> ingest run queued: {result.queued_at.timestamp() - landed.put_at:.2f}s")
    assert (result.state, result.outcome) == ("success", "ingested")

    [event] = raw_events_for(airflow_api, landed.key)
    assert event["partition_key"] == day
    head = raw_partitions(event["extra"])[day]
    assert head["rows"] == 2000 and head["source_etag"] == landed.etag
    assert head["uri"].endswith(f"raw/date={day}/{head['version']}/data.parquet")
    assert quarantine_events_for(airflow_api, landed.key) == []

    # Every XCom of the run went through XComObjectStorageBackend into the local S3.
    storage = stack.settings.storage
    objects = stack.s3_client().list_objects_v2(
        Bucket=storage.xcom_bucket, Prefix=f"{storage.xcom_prefix}/{CHURN.ingest_dag}/{result.run_id}/"
    )
    stored_tasks = {o["Key"].split("/")[3] for o in objects.get("Contents", [])}
    assert {
        "validate.landed_objects",
        "validate.validate_and_store",
        "publish.publish_raw_partition",
    } <= stored_tasks


def test_a_batch_of_hostile_landings_is_quarantined_case_by_case_and_nothing_is_published(stack, airflow_api):
    """Every row of tests/hostile_inputs.py landed at once: each gets its own quarantine record with the
    right problem code, none becomes a raw partition, and the triggerer and scheduler stay healthy."""
    landed = {}
    for row in HOSTILE_INPUTS:
        put = land(stack, key_for(row, unique_day(2100)), row.body())
        landed[put.key] = (row, put.etag)
    for key, (row, etag) in landed.items():
        result = follow_landing(airflow_api, key, etag, timeout_s=RUN_TIMEOUT_S)
        assert result.state == "success", (row.name, result.tasks)
    outcomes = {}
    for key, (row, _) in landed.items():
        assert raw_events_for(airflow_api, key) == [], row.name
        [event] = quarantine_events_for(airflow_api, key)
        [record] = [r for r in quarantine_records(event["extra"]) if r["source_key"] == key]
        codes = {problem["code"] for problem in record["problems"]}
        assert codes & row.codes, (row.name, codes)
        outcomes[row.name] = sorted(codes)
    for name in ("triggerer", "scheduler", "dag-processor"):
        assert stack.check(name)[0], f"{name} did not survive the hostile batch"
    print("\n" + "\n".join(f"  {name:<22} quarantined {codes}" for name, codes in outcomes.items()))


def test_dag_run_conf_can_neither_lower_the_gate_nor_start_a_deploy(stack, airflow_api):
    """A hand-made deploy run with a conf that tries to force promotion fails at once and changes
    nothing: the gate reads only config, and a deploy needs an evaluation event."""
    from mlflow import MlflowClient

    from landfall.ops.follow import watch_run

    name = stack.settings.mlflow.model_name
    hostile_conf = {
        "min_score": 0,
        "min_improvement": -1,
        "should_deploy": True,
        "force": True,
        "deploy": {"min_score": 0.0},
        "evaluation": {"should_deploy": True, "model_uri": "runs:/deadbeef/model", "run_id": "deadbeef"},
    }
    run = airflow_api.trigger(CHURN.deploy_dag, hostile_conf)
    result = watch_run(airflow_api, CHURN.deploy_dag, run["dag_run_id"], time.monotonic() + RUN_TIMEOUT_S)
    assert result.state == "failed" and result.tasks["evaluation"] == "failed"
    assert result.tasks.get("promote") in ("upstream_failed", "skipped", None)
    # Chains of other tests may promote meanwhile; the forged candidate never is.
    versions = MlflowClient().search_model_versions(f"name = '{name}'")
    assert all(v.tags.get("landfall.candidate_run_id") != "deadbeef" for v in versions)
    assert all(v.run_id != "deadbeef" for v in versions)


def test_an_oversized_conf_is_refused_or_harmless(stack, airflow_api):
    import requests

    conf = {"blob": "x" * 2_000_000}
    try:
        run = airflow_api.trigger(CHURN.ingest_dag, conf)
    except requests.HTTPError as error:
        assert 400 <= error.response.status_code < 500  # refused by the API: fine
    else:
        from landfall.ops.follow import watch_run

        result = watch_run(airflow_api, CHURN.ingest_dag, run["dag_run_id"], time.monotonic() + RUN_TIMEOUT_S)
        # No landing event and no file for its day: nothing is ingested or published.
        assert not any(
            state == "success" for task, state in result.tasks.items() if task.startswith("publish")
        ), result.tasks
    for name in ("scheduler", "api-server", "triggerer"):
        assert stack.check(name)[0], f"{name} did not survive an oversized conf"


def test_each_file_is_ingested_exactly_once_across_a_triggerer_restart(stack, airflow_api):
    before = land(stack, day_key(unique_day(2100)), to_parquet(make_batch(500, seed=21)))
    assert follow_landing(airflow_api, before.key, before.etag, timeout_s=RUN_TIMEOUT_S).outcome == "ingested"

    stack.stop("triggerer")
    # Lands while no triggerer is running: must not be missed.
    during = land(stack, day_key(unique_day(2100)), to_parquet(make_batch(500, seed=22)))
    stack.up()  # restarts only what is down
    assert follow_landing(airflow_api, during.key, during.etag, timeout_s=RUN_TIMEOUT_S).outcome == "ingested"

    after = land(stack, day_key(unique_day(2100)), to_parquet(make_batch(500, seed=23)))
    assert follow_landing(airflow_api, after.key, after.etag, timeout_s=RUN_TIMEOUT_S).outcome == "ingested"

    time.sleep(3 * stack.settings.watcher.poll_interval_s + 2)  # give a duplicate the chance to show up
    for landed in (before, during, after):
        assert len(raw_events_for(airflow_api, landed.key)) == 1, landed.key
        assert len(landing_events_for(airflow_api, landed.key)) == 1, landed.key
