"""The promises under an unkind caller, through the real triggerer and scheduler: every landing of a
300-file burst across 300 new day folders recorded exactly once (also with the triggerer SIGKILLed
mid-burst), and events that the pipeline did not raise - posted through the REST API - move no data
and train nothing.

The suite's bursts are 300 files (LANDFALL_BURST sets another size); `make bench` lands 1,000 across
1,000 days and prints the throughput.

The bursts land small schema-invalid files on purpose: the watcher, the events, the chunked mapping and
the records do the same work as for good files, without 1,000 training chains."""

from __future__ import annotations

import os
import time
import uuid
from datetime import date, timedelta

import pytest

from journeys import CHURN, day_key, finished_run, land, task_states, unique_day, wait_for
from landfall.airflow.tasks.ingest import MAX_CHUNKS
from landfall.core import catalog
from landfall.ops.bench.landing_records import landing_runs, outcome_counts
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.datagen import make_batch, make_corrupt, to_parquet
from landfall.pipeline.publish import current_head

pytestmark = pytest.mark.stack
BURST = int(os.environ.get("LANDFALL_BURST", "300"))
BURST_TIMEOUT_S = 1200


def _burst_keys(first_year: int) -> list[str]:
    start = date(first_year, 1, 1) + timedelta(days=uuid.uuid4().int % 300)
    return [day_key((start + timedelta(days=n)).isoformat()) for n in range(BURST)]


def _land_burst(stack, keys: list[str], after_each=None) -> float:
    bodies = [make_corrupt("schema", seed=n) for n in range(20)]
    s3, bucket = stack.s3_client(), stack.settings.storage.datasets_bucket
    started = time.time()
    for n, key in enumerate(keys):
        s3ops.put_bytes(s3, bucket, key, bodies[n % len(bodies)])
        if after_each:
            after_each(n)
    return started


def _check_burst(stack, api, keys: list[str], started: float) -> dict:
    """Every key recorded exactly once, no run failed, no run mapped more than MAX_CHUNKS chunks."""

    def all_recorded():
        counts = outcome_counts(api, set(keys))
        return counts if all(counts.values()) else None

    counts = wait_for(all_recorded, BURST_TIMEOUT_S, f"{BURST} landings to be recorded", every_s=3)
    wall = time.time() - started
    time.sleep(3 * stack.settings.watcher.poll_interval_s + 5)  # room for a late duplicate
    counts = outcome_counts(api, set(keys))
    events = wait_for(lambda: landing_runs(api, set(keys)), 120, "the landing events")
    runs = {run["run_id"] for evs in events.values() for event in evs for run in event["created_dagruns"]}
    states = {
        r["dag_run_id"]: r for r in api.dag_runs(CHURN.ingest_dag, limit=500) if r["dag_run_id"] in runs
    }
    assert sum(1 for n in counts.values() if n == 0) == 0, "lost landings"
    assert {k: n for k, n in counts.items() if n > 1} == {}, "landings recorded twice"
    assert [r for r in states.values() if r["state"] == "failed"] == [], "failed ingest runs"
    for run_id in runs:
        mapped = [
            t for t in api.task_instances(CHURN.ingest_dag, run_id) if t["task_id"] == catalog.EXAMINE_TASK
        ]
        assert len(mapped) <= MAX_CHUNKS, (run_id, len(mapped))
    figures = {"wall_s": round(wall, 1), "files_per_s": round(len(keys) / wall, 2), "runs": len(runs)}
    print(f"\nburst of {len(keys)}: {figures}")
    return figures


def test_a_burst_of_300_landings_on_300_new_days_is_recorded_exactly_once(stack, airflow_api):
    keys = _burst_keys(3000)
    started = _land_burst(stack, keys)
    _check_burst(stack, airflow_api, keys, started)


def test_the_same_burst_with_the_triggerer_sigkilled_midway_is_recorded_exactly_once(stack, airflow_api):
    keys = _burst_keys(3400)
    killed: dict[str, int | None] = {}

    def kill_at_a_third(n: int) -> None:
        if n == BURST // 3:
            killed["pid"] = stack.kill("triggerer")

    started = _land_burst(stack, keys, kill_at_a_third)
    assert killed["pid"], "the triggerer was not running"
    _check_burst(stack, airflow_api, keys, started)
    [triggerer] = [c for c in stack.status() if c.name == "triggerer"]
    assert triggerer.healthy and triggerer.restarts >= 1 and triggerer.pid != killed["pid"]


def test_a_forged_landing_event_moves_no_data_and_is_reported(stack, airflow_api, alerts):
    """An event posted through the REST API naming a published raw partition and a real landing, with
    the watcher's payload shape: refused unread, the run fails with the reason, the data stays."""
    storage, s3 = stack.settings.storage, stack.s3_client()
    bucket = storage.datasets_bucket
    published_day = unique_day(2800)
    landing = land(stack, day_key(published_day), to_parquet(make_batch(500, seed=61)))
    head = wait_for(lambda: current_head(s3, storage, published_day), 300, "the day to be published")
    raw_key = head["uri"].removeprefix(f"s3://{bucket}/")
    before = {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in (raw_key, landing.key)}
    target = {
        "bucket": bucket,
        "etag": "0" * 32,
        "last_modified": 1,
        "size": 1,
        "partition_date": published_day,
    }
    forged = {
        "type": "landed",
        "bucket": bucket,
        "batch": "forged",
        "objects": [{**target, "key": raw_key}, {**target, "key": landing.key}],
        "signature": "0" * 64,
    }
    asset_id = airflow_api.asset_by_name(CHURN.landing)["id"]
    posted_at = time.time()
    airflow_api.post(
        "assets/events", {"asset_id": asset_id, "extra": {"from_trigger": True, "payload": forged}}
    )

    def refused_run():
        for run in airflow_api.dag_runs(CHURN.ingest_dag, limit=20):
            events = airflow_api.get_tolerant(
                f"dags/{CHURN.ingest_dag}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents"
            )
            if events and any(
                (e.get("extra") or {}).get("payload", {}).get("batch") == "forged"
                for e in events["asset_events"]
            ):
                return run if run["state"] in ("success", "failed") else None
        return None

    run = wait_for(refused_run, 300, "the run of the forged event")
    assert (
        run["state"] == "failed"
        and task_states(airflow_api, CHURN.ingest_dag, run["dag_run_id"])[catalog.LANDED_TASK] == "failed"
    )
    after = {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in before}
    assert after == before, "a forged event moved or changed data"
    records = s3ops.list_keys(s3, bucket, f"{storage.quarantine_prefix}/forged-events/")
    assert any(r["LastModified"].timestamp() >= posted_at - 2 for r in records), (
        "no record of the forged event"
    )
    wait_for(
        lambda: [a for a in alerts.of_kind("forged_event") if "not raised by the watcher" in a["text"]],
        60,
        "the forged-event alert",
    )


def test_a_forged_raw_partition_event_is_not_preprocessed_or_trained_on(stack, airflow_api):
    day = unique_day(2850)
    asset_id = airflow_api.asset_by_name(CHURN.raw)["id"]
    planted = {"uri": "s3://someone-elses/poisoned.parquet", "version": "1-" + "0" * 32, "rows": 10}
    airflow_api.post(
        "assets/events", {"asset_id": asset_id, "partition_key": day, "extra": {"partitions": {day: planted}}}
    )
    run = finished_run(airflow_api, CHURN.preprocess_dag, lambda r: r.get("partition_key") == day, 300)
    assert run["state"] == "failed"
    assert (
        task_states(airflow_api, CHURN.preprocess_dag, run["dag_run_id"])[catalog.PUBLISH_DATASET_TASK]
        == "failed"
    )
    time.sleep(5)
    assert [e for e in airflow_api.events_of(CHURN.training_dataset) if e.get("partition_key") == day] == []
    assert not [r for r in airflow_api.dag_runs(CHURN.train_dag, limit=50) if r.get("partition_key") == day]


def test_landing_the_same_bytes_again_after_a_quarantine_is_processed_again(stack, airflow_api):
    """The documented rule: a landing is one PUT. A file re-landed unchanged (say, after the schema in
    config was fixed) is validated again, and recorded again."""
    from landfall.ops.follow import follow_landing, quarantine_events_for

    key = day_key(unique_day(2900))
    first = land(stack, key, make_corrupt("schema", seed=5))
    assert follow_landing(airflow_api, first.key, first.etag, timeout_s=300).outcome == "quarantined"
    time.sleep(1.1)  # a new Last-Modified second
    again = land(stack, key, make_corrupt("schema", seed=5))
    assert again.etag == first.etag
    wait_for(lambda: len(quarantine_events_for(airflow_api, key)) == 2, 300, "the second quarantine record")
