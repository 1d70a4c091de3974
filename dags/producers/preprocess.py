"""Preprocess: each published partition becomes features and a deterministic three-way split
(train / validation / test, by a hash of the row's id), streamed in bounded memory.

Partition-aware: one run per `raw_daily` partition key. A day (YYYY-MM-DD) is passed on to the
`training_dataset` Asset as it is; an hour (YYYY-MM-DDTHH) is prepared as it lands, and the run that
completes its day's 24 hours publishes the day rolled up (training stays daily). Only `raw_daily`
events raised by landfall_ingest's publish task are read.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import PartitionedAssetTimetable, TaskGroup, dag, task

from assets import RAW, TRAINING_DATASET
from landfall.airflow.deadlines import chain_deadline
from landfall.airflow.notifier import LandfallNotifier
from landfall.core.settings import get_settings

default_args = {
    "retries": 2,
    "retry_delay": timedelta(seconds=10),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(minutes=20),
    "on_failure_callback": LandfallNotifier("failure"),
}


@dag(
    dag_id="landfall_preprocess",
    schedule=PartitionedAssetTimetable(assets=RAW),
    catchup=False,
    max_active_runs=2,
    default_args=default_args,
    deadline=chain_deadline(get_settings().deploy.deadline_minutes),
    tags=["landfall", "producer", "preprocess"],
    doc_md=__doc__,
)
def landfall_preprocess():
    with TaskGroup("features", tooltip="features and the three-way split, written as parquet"):
        # One task (not "read the event" + "prepare"): a task's start-up is the largest cost of a run,
        # and a year of history makes 365 of them.
        @task(multiple_outputs=False, outlets=[TRAINING_DATASET])
        def build_training_dataset(triggering_asset_events=None, outlet_events=None, dag_run=None) -> dict:
            """The partition the raw event published, if still current, is prepared; a day's dataset is
            published, or a day rolled up from its 24 hours (by the hour that completes it). An hour of
            an incomplete day is prepared, then skips: no event."""
            from landfall.airflow.tasks.events import latest_event_extra
            from landfall.airflow.tasks.preprocess import preprocess, raw_partition
            from landfall.airflow.tasks.rollup import publishable

            partition = dag_run.partition_key
            extra = latest_event_extra(list(triggering_asset_events[RAW]), RAW.name, partition)
            dataset = preprocess(raw_partition(extra, partition), partition)
            published = publishable(dataset, dag_run.run_id)
            outlet_events[TRAINING_DATASET].add_partitions([published["partition"]])
            outlet_events[TRAINING_DATASET].extra = published
            return published

        build_training_dataset()


landfall_preprocess()
