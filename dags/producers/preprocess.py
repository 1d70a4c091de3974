"""Preprocess: each published partition becomes features and a deterministic three-way split
(train / validation / test, by a hash of the row's id), streamed in bounded memory.

Partition-aware: one run per `raw_daily` partition key. A day (YYYY-MM-DD) is passed on to the
`training_dataset` Asset as it is; an hour (YYYY-MM-DDTHH) is prepared as it lands, and the run that
completes its day's 24 hours publishes the day rolled up (training stays daily). Only `raw_daily`
events raised by landfall_ingest's publish task are read.

A rolled-up day that fails the whole-day checks a daily file gets (min_rows, both label classes) is not
published: `report_refused_day` raises its `quarantine` event and the alert (it runs only when the
task before it skipped, and skips unless that task refused a day).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import PartitionedAssetTimetable, TaskGroup, dag, task

from assets import QUARANTINE, RAW, TRAINING_DATASET
from landfall.airflow.deadlines import chain_deadline
from landfall.airflow.notifier import LandfallNotifier
from landfall.core.catalog import PUBLISH_DATASET_TASK
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

        built = build_training_dataset()

    @task(multiple_outputs=False, outlets=[QUARANTINE], trigger_rule="all_skipped")
    def report_refused_day(outlet_events=None, dag_run=None, ti=None) -> dict:
        """The quarantine event and alert of a day the task before refused (no training for it)."""
        from landfall.airflow.tasks.rollup import REFUSED_DAY_KEY, report_refused_day

        refused = ti.xcom_pull(task_ids=PUBLISH_DATASET_TASK, key=REFUSED_DAY_KEY)
        return report_refused_day(refused, outlet_events[QUARANTINE], dag_run.run_id)

    # The run's state: report_refused_day is skipped when building failed (all_skipped), which alone
    # would end a failed run as a success. This leaf is upstream_failed then (the scheduler sets an
    # EmptyOperator's state itself: no worker starts).
    built >> [report_refused_day(), EmptyOperator(task_id="dataset_built")]


landfall_preprocess()
