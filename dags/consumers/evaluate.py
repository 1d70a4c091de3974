"""Evaluate: the candidate and the current champion are scored on the same held-out test split (no
trial has seen it); the decision, with the champion version it compared against, travels on the
`evaluation` Asset. The champion is loaded by that version, not by its alias, so the record is exact
even if a promotion moves the alias meanwhile: deploy promotes only if the champion is still that version.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import PartitionedAssetTimetable, dag, task

from assets import EVALUATION, MODEL_CANDIDATE
from landfall.airflow.deadlines import chain_deadline
from landfall.airflow.notifier import LandfallNotifier
from landfall.core.settings import get_settings

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
    deadline=chain_deadline(get_settings().deploy.deadline_minutes),
    tags=["landfall", "consumer", "evaluate"],
    doc_md=__doc__,
)
def landfall_evaluate():
    @task(multiple_outputs=False)
    def candidate(triggering_asset_events=None, dag_run=None) -> dict:
        from landfall.airflow.tasks.events import latest_event_extra

        events = list(triggering_asset_events[MODEL_CANDIDATE])
        return latest_event_extra(events, MODEL_CANDIDATE.name, dag_run.partition_key)

    @task(multiple_outputs=False, outlets=[EVALUATION])
    def compare_with_champion(candidate: dict, outlet_events=None) -> dict:
        from landfall.airflow.tasks.evaluate import evaluate

        decision = evaluate(candidate)
        outlet_events[EVALUATION].extra = decision
        return decision

    compare_with_champion(candidate())


landfall_evaluate()
