"""Evaluate: the candidate and the current champion are scored on the same held-out test split (no
trial has seen it); the decision, with the champion version it compared against, travels on the
`evaluation` Asset. The champion is loaded by that version, not by its alias, so the record is exact
even if a promotion moves the alias meanwhile: deploy promotes only if the champion is still that version.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import PartitionedAssetTimetable, dag, task

from assets import PIPELINES, PipelineAssets
from landfall.airflow.deadlines import chain_deadline
from landfall.airflow.notifier import LandfallNotifier

default_args = {
    "retries": 2,
    "retry_delay": timedelta(seconds=15),
    "execution_timeout": timedelta(minutes=15),
    "on_failure_callback": LandfallNotifier("failure"),
}


def evaluate_dag(pipeline: PipelineAssets):
    name, candidates, evaluation = pipeline.name, pipeline.model_candidate, pipeline.evaluation

    @dag(
        dag_id=pipeline.names.evaluate_dag,
        schedule=PartitionedAssetTimetable(assets=candidates),
        catchup=False,
        max_active_runs=1,
        default_args=default_args,
        deadline=chain_deadline(pipeline.settings.deploy.deadline_minutes),
        tags=["landfall", name, "consumer", "evaluate"],
        doc_md=__doc__,
    )
    def landfall_evaluate():
        @task(multiple_outputs=False)
        def candidate(triggering_asset_events=None, dag_run=None) -> dict:
            from landfall.airflow.tasks.events import latest_event_extra

            events = list(triggering_asset_events[candidates])
            return latest_event_extra(events, candidates.name, dag_run.partition_key)

        @task(multiple_outputs=False, outlets=[evaluation])
        def compare_with_champion(candidate: dict, outlet_events=None) -> dict:
            from landfall.airflow.tasks.evaluate import evaluate

            decision = evaluate(name, candidate)
            outlet_events[evaluation].extra = decision
            return decision

        compare_with_champion(candidate())

    return landfall_evaluate()


for _pipeline in PIPELINES:
    evaluate_dag(_pipeline)
