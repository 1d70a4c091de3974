"""Ingest: every object landing under the landing prefix is validated, then published as the daily raw
partition or quarantined with a reason. Scheduled on the landing Asset, whose watcher runs in the
triggerer: no cron, no sensor holding a worker slot.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import TaskGroup, dag, get_current_context, task

from assets import LANDING, QUARANTINE, RAW

default_args = {
    "retries": 3,
    "retry_delay": timedelta(seconds=10),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(minutes=15),
}


@dag(
    dag_id="landfall_ingest",
    schedule=[LANDING],
    catchup=False,
    max_active_runs=4,
    default_args=default_args,
    tags=["landfall", "producer", "ingest"],
    doc_md=__doc__,
)
def landfall_ingest():
    @task
    def landed_objects(triggering_asset_events=None) -> list[dict]:
        """One entry per landed object; several asset events can merge into one run, so read them all."""
        from landfall.airflow_tasks import landed_objects_from_events

        return landed_objects_from_events(triggering_asset_events[LANDING])

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

            return run(outcome, outlet_events[RAW], asset_state_store[RAW], dag_run.run_id)

        @task(outlets=[QUARANTINE])
        def report_quarantine(outcome: dict, outlet_events=None):
            from landfall.airflow_tasks import report_quarantine as run

            return run(outcome, outlet_events[QUARANTINE])

        publish_raw_partition.expand(outcome=outcomes)
        report_quarantine.expand(outcome=outcomes)


landfall_ingest()
