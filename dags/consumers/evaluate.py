"""Evaluate: the candidate and the current champion (`models:/<name>@champion`) are scored on the same
held-out data; the decision travels on the `evaluation` Asset.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import PartitionedAssetTimetable, dag, task

from assets import EVALUATION, MODEL_CANDIDATE
from landfall.notify import LandfallNotifier

default_args = {
    "retries": 2,
    "retry_delay": timedelta(seconds=15),
    "execution_timeout": timedelta(minutes=15),
    "on_failure_callback": LandfallNotifier("failure"),
}


@dag(
    dag_id="landfall_evaluate",
    schedule=PartitionedAssetTimetable(assets=MODEL_CANDIDATE),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["landfall", "consumer", "evaluate"],
    doc_md=__doc__,
)
def landfall_evaluate():
    @task
    def candidate(triggering_asset_events=None, dag_run=None) -> dict:
        from landfall.pipeline_tasks import latest_event_extra

        return latest_event_extra(list(triggering_asset_events[MODEL_CANDIDATE]), dag_run.partition_key)

    @task(multiple_outputs=True, outlets=[EVALUATION])
    def compare_with_champion(candidate: dict, outlet_events=None) -> dict:
        from landfall.pipeline_tasks import evaluate

        decision = evaluate(candidate)
        outlet_events[EVALUATION].extra = decision
        return decision

    compare_with_champion(candidate())


landfall_evaluate()
