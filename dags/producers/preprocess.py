"""Preprocess: each published partition becomes features and a deterministic three-way split
(train / validation / test, by a hash of the row's id), streamed in bounded memory.

Partition-aware: one run per `raw_daily` partition key. A day (YYYY-MM-DD) is passed on to the
`training_dataset` Asset as it is; an hour (YYYY-MM-DDTHH) is prepared as it lands, and the run that
completes its day's 24 hours publishes the day rolled up (training stays daily). Only `raw_daily`
events raised by the pipeline's ingest publish task are read.

A rolled-up day that fails the whole-day checks a daily file gets (min_rows, both label classes) is not
published: `report_refused_day` raises its `quarantine` event and the alert (it runs only when the
task before it skipped, and skips unless that task refused a day).

Each published day is also compared with the champion's training window (`compare_with_reference`): a
`drift_report` event with the figures per feature and a `drift` alert when the day moved. It runs beside
training and never fails the run (`landfall.airflow.tasks.drift`).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import PartitionedAssetTimetable, TaskGroup, dag, task

from assets import PIPELINES, PipelineAssets
from landfall.airflow.deadlines import chain_deadline
from landfall.airflow.notifier import LandfallNotifier
from landfall.core.catalog import DRIFT_TASK, PUBLISH_DATASET_TASK

default_args = {
    "retries": 2,
    "retry_delay": timedelta(seconds=10),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(minutes=20),
    "on_failure_callback": LandfallNotifier("failure"),
}


def preprocess_dag(pipeline: PipelineAssets):
    name, raw, quarantine, dataset, drift = (
        pipeline.name,
        pipeline.raw,
        pipeline.quarantine,
        pipeline.training_dataset,
        pipeline.drift_report,
    )

    @dag(
        dag_id=pipeline.names.preprocess_dag,
        schedule=PartitionedAssetTimetable(assets=raw),
        catchup=False,
        max_active_runs=2,
        default_args=default_args,
        deadline=chain_deadline(pipeline.settings.deploy.deadline_minutes),
        tags=["landfall", name, "producer", "preprocess"],
        doc_md=__doc__,
    )
    def landfall_preprocess():
        with TaskGroup("features", tooltip="features and the three-way split, written as parquet"):

            @task(multiple_outputs=False, outlets=[dataset])
            def build_training_dataset(
                triggering_asset_events=None, outlet_events=None, dag_run=None
            ) -> dict:
                """The partition the raw event published, if still current, is prepared; a day's dataset is
                published, or a day rolled up from its 24 hours (by the hour that completes it). An hour of
                an incomplete day is prepared, then skips: no event."""
                from landfall.airflow.tasks.events import latest_event_extra
                from landfall.airflow.tasks.preprocess import preprocess, raw_partition
                from landfall.airflow.tasks.rollup import publishable

                partition = dag_run.partition_key
                extra = latest_event_extra(list(triggering_asset_events[raw]), raw.name, partition)
                prepared = preprocess(name, raw_partition(name, extra, partition), partition)
                published = publishable(name, prepared, dag_run.run_id)
                outlet_events[dataset].add_partitions([published["partition"]])
                outlet_events[dataset].extra = published
                return published

            built = build_training_dataset()

        @task(multiple_outputs=False, outlets=[quarantine], trigger_rule="all_skipped")
        def report_refused_day(outlet_events=None, dag_run=None, ti=None) -> dict:
            """The quarantine event and alert of a day the task before refused (no training for it)."""
            from landfall.airflow.tasks.rollup import REFUSED_DAY_KEY, report_refused_day

            refused = ti.xcom_pull(task_ids=PUBLISH_DATASET_TASK, key=REFUSED_DAY_KEY)
            return report_refused_day(name, refused, outlet_events[quarantine], dag_run.run_id)

        @task(multiple_outputs=False, task_id=DRIFT_TASK, outlets=[drift], retries=0)
        def compare_with_reference(published: dict, outlet_events=None) -> dict:
            """The published day against the champion's training window: the `drift_report` event and,
            when it moved, a `drift` alert. Runs beside training, never holds it up, never fails."""
            from landfall.airflow.tasks.drift import drift_report

            return drift_report(name, published, outlet_events[drift])

        built >> [report_refused_day(), EmptyOperator(task_id="dataset_built")]
        compare_with_reference(built)

    return landfall_preprocess()


for _pipeline in PIPELINES:
    preprocess_dag(_pipeline)
