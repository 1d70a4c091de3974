"""Ingest: every landing under the landing prefix is validated, then published as its day's raw partition
or quarantined with a reason. Scheduled on the landing Asset, whose watcher runs in the triggerer: no
sensor holding a worker slot.

A run may carry many landings (a burst of history, or several watcher events merged into one run): they
are checked in chunks, one mapped task per chunk, so a run never maps more than a bounded number of
tasks and a burst pays a task's start-up per chunk, not per file. Only events the watcher signed are
acted on; an event posted through the REST API is refused and reported.

The schedule also has a daily timetable, which is what makes history re-processable with the plain
CLI: `airflow backfill create --dag-id landfall_churn_ingest --from-date 2026-11-01 --to-date 2026-11-03`
creates one run per day that re-reads that day's landed file and publishes it as the raw partition
again; preprocess, train, evaluate and deploy follow per partition through the Assets. The same
timetable's nightly run is a catch-up for the day that just ended: it finds the day's file if the
watcher never reported it, and publishes nothing twice.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import (
    AssetOrTimeSchedule,
    CronDataIntervalTimetable,
    TaskGroup,
    dag,
    get_current_context,
    task,
)

from assets import PIPELINES, PipelineAssets
from landfall.airflow.deadlines import chain_deadline
from landfall.airflow.notifier import LandfallNotifier

# One data interval per calendar day (UTC): a backfilled or scheduled run re-reads the landing folder
# of its interval's start date. (Wrapped in AssetOrTimeSchedule, a CronPartitionTimetable's partition
# keys do not reach the runs in Airflow 3.3, so the day comes from the data interval.)
DAILY = CronDataIntervalTimetable("@daily", timezone="UTC")

default_args = {
    "retries": 3,
    "retry_delay": timedelta(seconds=10),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(minutes=15),
    "on_failure_callback": LandfallNotifier("failure"),
}


def ingest_dag(pipeline: PipelineAssets):
    name, landing, raw, quarantine = pipeline.name, pipeline.landing, pipeline.raw, pipeline.quarantine

    @dag(
        dag_id=pipeline.names.ingest_dag,
        schedule=AssetOrTimeSchedule(timetable=DAILY, assets=landing),
        catchup=False,
        max_active_runs=4,
        default_args=default_args,
        deadline=chain_deadline(pipeline.settings.deploy.deadline_minutes),
        tags=["landfall", name, "producer", "ingest"],
        doc_md=__doc__,
    )
    def landfall_ingest():
        with TaskGroup("validate", tooltip="schema, types, nulls, ranges and row count; stage or quarantine"):

            @task(multiple_outputs=False)
            def landed_objects(triggering_asset_events=None, dag_run=None) -> list[list[dict]]:
                """The run's landings in chunks; several asset events can merge into one run, so read them
                all. A backfill or catch-up run has no events: it looks up its day's landed file."""
                from landfall.airflow.tasks.ingest import landed_chunks, landing_of_partition

                events = list(triggering_asset_events[landing]) if landing in triggering_asset_events else []
                if events:
                    return landed_chunks(name, events, dag_run.run_id)
                day = dag_run.partition_key or (
                    dag_run.data_interval_start and dag_run.data_interval_start.date()
                )
                return landing_of_partition(name, str(day) if day else None)

            @task(multiple_outputs=False, map_index_template="{{ chunk_label }}")
            def validate_and_store(chunk: list[dict], dag_run=None) -> list[dict]:
                from landfall.airflow.tasks.ingest import chunk_label, examine_chunk

                get_current_context()["chunk_label"] = chunk_label(chunk)  # names the mapped task in the UI
                return examine_chunk(name, chunk, reprocess=dag_run.run_type == "backfill")

            outcomes = validate_and_store.expand(chunk=landed_objects())

        with TaskGroup("publish", tooltip="emit the raw partitions and the quarantine record"):

            @task(multiple_outputs=False, outlets=[raw], map_index_template="{{ chunk_label }}")
            def publish_raw_partition(outcomes: list[dict], outlet_events=None, dag_run=None) -> dict:
                from landfall.airflow.tasks.ingest import chunk_label, publish_chunk

                get_current_context()["chunk_label"] = chunk_label(outcomes)
                reprocess = dag_run.run_type == "backfill"
                return publish_chunk(name, outcomes, outlet_events[raw], dag_run.run_id, reprocess)

            @task(multiple_outputs=False, outlets=[quarantine], map_index_template="{{ chunk_label }}")
            def report_quarantine(outcomes: list[dict], outlet_events=None, dag_run=None) -> dict:
                from landfall.airflow.tasks.ingest import chunk_label, report_chunk

                get_current_context()["chunk_label"] = chunk_label(outcomes)
                reprocess = dag_run.run_type == "backfill"
                return report_chunk(name, outcomes, outlet_events[quarantine], dag_run.run_id, reprocess)

            publish_raw_partition.expand(outcomes=outcomes)
            report_quarantine.expand(outcomes=outcomes)

    return landfall_ingest()


for _pipeline in PIPELINES:
    ingest_dag(_pipeline)
