"""End to end on the real embedded stack: SeaweedFS, MLflow and Airflow 3 processes on 127.0.0.1.

A file PUT into S3 must start the ingest DAG through the triggerer by itself; these tests only land
files and observe through the Airflow REST API v2 and S3.
"""

from __future__ import annotations

import time
import uuid
from datetime import date, timedelta

import pytest

from landfall.datagen import make_batch, make_corrupt, to_parquet
from landfall.follow import follow_landing
from landfall.triggers import landed_objects_in

pytestmark = pytest.mark.stack
RUN_TIMEOUT_S = 240


def _unique_day() -> str:
    return (date(2100, 1, 1) + timedelta(days=uuid.uuid4().int % 30000)).isoformat()


def _land(stack, key: str, body: bytes) -> tuple[str, float]:
    bucket = stack.settings.storage.datasets_bucket
    put_at = time.time()
    etag = stack.s3_client().put_object(Bucket=bucket, Key=key, Body=body)["ETag"].strip('"')
    return etag, put_at


def _raw_events_for(api, key: str) -> list[dict]:
    return [e for e in api.events_of("raw_daily") if e["extra"].get("source_key") == key]


def _quarantine_events_for(api, key: str) -> list[dict]:
    return [e for e in api.events_of("quarantine") if e["extra"].get("source_key") == key]


def _landing_events_for(api, key: str) -> list[dict]:
    return [e for e in api.events_of("landing") if key in [o["key"] for o in landed_objects_in(e["extra"])]]


def test_a_good_file_is_ingested_and_published_as_the_raw_partition(stack, airflow_api):
    day = _unique_day()
    key = f"daily/{day}/features.parquet"
    etag, put_at = _land(stack, key, to_parquet(make_batch(2000, seed=11)))
    result = follow_landing(airflow_api, key, etag, timeout_s=RUN_TIMEOUT_S)
    print(f"\nPUT -> ingest run queued: {result.queued_at.timestamp() - put_at:.2f}s")
    assert (result.state, result.outcome) == ("success", "ingested")

    [event] = _raw_events_for(airflow_api, key)
    assert event["partition_key"] == day
    assert event["extra"]["rows"] == 2000 and event["extra"]["source_etag"] == etag
    assert event["extra"]["uri"].endswith(f"raw/date={day}/data.parquet")
    assert _quarantine_events_for(airflow_api, key) == []

    # Every XCom of the run went through XComObjectStorageBackend into the local S3.
    storage = stack.settings.storage
    objects = stack.s3_client().list_objects_v2(
        Bucket=storage.xcom_bucket, Prefix=f"{storage.xcom_prefix}/landfall_ingest/{result.run_id}/"
    )
    stored_tasks = {o["Key"].split("/")[3] for o in objects.get("Contents", [])}
    assert {
        "validate.landed_objects",
        "validate.validate_and_store",
        "publish.publish_raw_partition",
    } <= stored_tasks


@pytest.mark.parametrize(
    ("key_template", "body", "code"),
    [
        ("daily/{day}/features.parquet", make_corrupt("schema"), "schema_mismatch"),
        ("daily/{day}/features.parquet", make_corrupt("empty"), "empty_file"),
        ("daily/{day}/features.csv", to_parquet(make_batch(300)), "bad_suffix"),
        ("daily/2024-02-30/features.parquet", to_parquet(make_batch(300)), "bad_partition"),
    ],
    ids=["wrong-schema", "empty", "wrong-suffix", "not-a-date"],
)
def test_bad_input_is_quarantined_with_a_reason_and_nothing_is_published(
    stack, airflow_api, key_template, body, code
):
    key = key_template.format(day=_unique_day())
    if "2024-02-30" in key:
        key = key.replace("features", f"features-{uuid.uuid4().hex[:6]}").replace(".parquet", "") + ".parquet"
        code = "bad_suffix"  # the file-name check runs before the date check
    etag, _ = _land(stack, key, body)
    result = follow_landing(airflow_api, key, etag, timeout_s=RUN_TIMEOUT_S)
    assert (result.state, result.outcome) == ("success", "quarantined")
    assert _raw_events_for(airflow_api, key) == []
    [event] = _quarantine_events_for(airflow_api, key)
    assert code in [p["code"] for p in event["extra"]["problems"]]

    s3, bucket = stack.s3_client(), stack.settings.storage.datasets_bucket
    folder = event["extra"]["quarantine_uri"].removeprefix(f"s3://{bucket}/")
    assert s3.get_object(Bucket=bucket, Key=f"{folder}object")["Body"].read() == body  # nothing lost
    assert s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0) == 0  # moved out of landing


def test_each_file_is_ingested_exactly_once_across_a_triggerer_restart(stack, airflow_api):
    before = f"daily/{_unique_day()}/features.parquet"
    etag_before, _ = _land(stack, before, to_parquet(make_batch(500, seed=21)))
    assert follow_landing(airflow_api, before, etag_before, timeout_s=RUN_TIMEOUT_S).outcome == "ingested"

    from landfall.stack import process

    process.stop(stack.state.pids, "triggerer")
    # Lands while no triggerer is running: must not be missed.
    during = f"daily/{_unique_day()}/features.parquet"
    etag_during, _ = _land(stack, during, to_parquet(make_batch(500, seed=22)))
    stack.up()  # restarts only what is down
    assert follow_landing(airflow_api, during, etag_during, timeout_s=RUN_TIMEOUT_S).outcome == "ingested"

    after = f"daily/{_unique_day()}/features.parquet"
    etag_after, _ = _land(stack, after, to_parquet(make_batch(500, seed=23)))
    assert follow_landing(airflow_api, after, etag_after, timeout_s=RUN_TIMEOUT_S).outcome == "ingested"

    time.sleep(3 * stack.settings.watcher.poll_interval_s + 2)  # give a duplicate the chance to show up
    for key in (before, during, after):
        assert len(_raw_events_for(airflow_api, key)) == 1, key
        assert len(_landing_events_for(airflow_api, key)) == 1, key
