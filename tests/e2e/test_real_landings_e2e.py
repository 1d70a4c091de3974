"""Real landing shapes through the real stack: multi-part days completed by a `_SUCCESS` marker are ingested
exactly once, when the marker lands, and a day's training run trains on the window of days before it."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from journeys import CHURN, partition_events, unique_day, wait_for
from landfall.ops.follow import follow_chain, follow_landing, landing_events_for
from landfall.ops.landings import land_day, land_parts
from landfall.pipeline import s3 as s3ops
from landfall.pipeline.datagen import make_batch, to_parquet
from landfall.pipeline.keys import processed_head_key
from landfall.pipeline.publish import published_head

pytestmark = pytest.mark.stack
TIMEOUT_S = 600


def _parts(rows: list[int], seed: int) -> list[bytes]:
    return [to_parquet(make_batch(count, seed=seed + index)) for index, count in enumerate(rows)]


def test_multi_part_days_are_ingested_once_and_the_third_day_trains_on_all_three(stack, airflow_api):
    import mlflow

    s3, storage = stack.s3_client(), stack.settings.storage
    first = date.fromisoformat(unique_day(4500))
    days = [first + timedelta(days=offset) for offset in range(3)]
    one = land_parts(s3, storage, days[0], _parts([1500, 1200, 1800], seed=510))
    two = land_day(s3, storage, days[1], to_parquet(make_batch(4000, seed=520)))
    for marker in (one[-1], two):
        assert follow_landing(airflow_api, marker.key, marker.etag, timeout_s=TIMEOUT_S).outcome == "ingested"

    # Exactly once: the parts were never reported by the watcher; the marker's run published one raw
    # partition holding every part (4,500 rows in 3 files).
    for part in one[:-1]:
        assert landing_events_for(airflow_api, part.key) == [], part.key
    [raw] = partition_events(airflow_api, CHURN.raw, days[0].isoformat())
    head = published_head(raw)
    assert (head["rows"], len(head["files"]), head["source_key"]) == (4500, 3, one[-1].key)

    # (Preprocess runs, not training_dataset events: Airflow 3.3's REST API answers 500 for the events of
    # an asset while a run they created has not started, as queued train runs have not.)
    def preprocessed(day: date) -> bool:
        runs = airflow_api.dag_runs(CHURN.preprocess_dag, limit=100)
        return any(r.get("partition_key") == day.isoformat() and r["state"] == "success" for r in runs)

    wait_for(lambda: all(map(preprocessed, days[:2])), TIMEOUT_S, "the first two days' preprocessing")
    three = land_parts(s3, storage, days[2], _parts([2000, 2000], seed=530))
    ingest = follow_landing(airflow_api, three[-1].key, three[-1].etag, timeout_s=TIMEOUT_S)
    chain = follow_chain(airflow_api, days[2].isoformat(), ingest.queued_at, timeout_s=TIMEOUT_S)
    assert [run.state for run in chain] == ["success"] * 4, [(run.dag_id, run.tasks) for run in chain]
    train = next(run for run in chain if run.dag_id == CHURN.train_dag)
    assert train.tasks.get("select_best") == "success", train.tasks
    # The canary checks the service against the offline predictions of the day's own test rows, whatever
    # the window's held-out set is.
    assert chain[-1].tasks.get("canary") in ("success", "skipped"), chain[-1].tasks

    datasets = [
        s3ops.get_json(s3, storage.datasets_bucket, processed_head_key(storage, d.isoformat()))[0]
        for d in days
    ]
    trials = mlflow.search_runs(
        experiment_names=[stack.settings.mlflow.experiment],
        filter_string=f"tags.`landfall.airflow_run_id` = '{train.run_id}'",
    )
    assert len(trials) > 0
    assert set(trials["params.train_partitions"]) == {"3"}
    assert set(trials["tags.landfall.window"]) == {",".join(d.isoformat() for d in days)}
    assert set(trials["params.train_rows"]) == {str(sum(d["rows_train"] for d in datasets))}
