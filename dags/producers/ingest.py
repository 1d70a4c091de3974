"""Ingest: every object landing under the landing prefix is validated, then published as the daily raw
partition or quarantined with a reason. Scheduled on the landing Asset, whose watcher runs in the
triggerer: no sensor holding a worker slot.

The schedule also has a daily timetable, which is what makes history re-processable with the plain
CLI: `airflow backfill create --dag-id landfall_ingest --from-date 2026-11-01 --to-date 2026-11-03`
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

from assets import LANDING, QUARANTINE, RAW

# One data interval per calendar day (UTC): a backfilled or scheduled run re-reads the landing folder
# of its interval's start date. (Wrapped in AssetOrTimeSchedule, a CronPartitionTimetable's partition
# keys do not reach the runs in Airflow 3.3, so the day comes from the data interval.)
DAILY = CronDataIntervalTimetable("@daily", timezone="UTC")

default_args = {
    "retries": 3,
    "retry_delay": timedelta(seconds=10),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(minutes=15),
}


@dag(
    dag_id="landfall_ingest",
    schedule=AssetOrTimeSchedule(timetable=DAILY, assets=LANDING),
    catchup=False,
    max_active_runs=4,
    default_args=default_args,
    tags=["landfall", "producer", "ingest"],
    doc_md=__doc__,
)
def landfall_ingest():
    @task
    def landed_objects(triggering_asset_events=None, dag_run=None) -> list[dict]:
        """One entry per landed object; several asset events can merge into one run, so read them all.
        A backfill or catch-up run has no events: it looks up its partition's landed file."""
        from landfall.airflow_tasks import landed_object_of_partition, landed_objects_from_events

        events = list(triggering_asset_events[LANDING]) if LANDING in triggering_asset_events else []
        if events:
            return landed_objects_from_events(events)
        day = dag_run.partition_key or (dag_run.data_interval_start and dag_run.data_interval_start.date())
        return landed_object_of_partition(str(day) if day else None)

    with TaskGroup("validate", tooltip="schema, types, nulls, ranges and row count; store or quarantine"):

        @task(map_index_template="{{ landed_key }}")
        def validate_and_store(landed: dict) -> dict:
            from landfall.airflow_tasks import validate_and_store as run

            get_current_context()["landed_key"] = landed["key"]  # names the mapped task in the UI
            return run(landed)

        outcomes = validate_and_store.expand(landed=landed_objects())

    with TaskGroup("publish", tooltip="emit the raw partition Asset or the quarantine record"):

        @task(outlets=[RAW])
        def publish_raw_partition(outcome: dict, outlet_events=None, asset_state_store=None, dag_run=None):
            from landfall.airflow_tasks import publish_raw_partition as run

            reprocess = dag_run.run_type == "backfill"
            return run(outcome, outlet_events[RAW], asset_state_store[RAW], dag_run.run_id, reprocess)

        @task(outlets=[QUARANTINE])
        def report_quarantine(outcome: dict, outlet_events=None):
            from landfall.airflow_tasks import report_quarantine as run

            return run(outcome, outlet_events[QUARANTINE])

        publish_raw_partition.expand(outcome=outcomes)
        report_quarantine.expand(outcome=outcomes)


landfall_ingest()
