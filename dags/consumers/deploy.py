"""Deploy: the gate from config (floor and minimum improvement) decides; deploy registers the model
version and moves the `champion` alias, at most once per candidate; a notification reports either way.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import PartitionedAssetTimetable, dag, task

from assets import EVALUATION, PRODUCTION_MODEL
from landfall.notify import LandfallNotifier

default_args = {
    # 10 s, 20 s, 40 s: rides out an MLflow restart, then fails loudly (and alerts) within ~1.5 min.
    "retries": 3,
    "retry_delay": timedelta(seconds=10),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(minutes=10),
    "on_failure_callback": LandfallNotifier("failure"),
}


@dag(
    dag_id="landfall_deploy",
    schedule=PartitionedAssetTimetable(assets=EVALUATION),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["landfall", "consumer", "deploy"],
    doc_md=__doc__,
)
def landfall_deploy():
    @task
    def evaluation(triggering_asset_events=None, dag_run=None) -> dict:
        from landfall.pipeline_tasks import latest_event_extra

        return latest_event_extra(list(triggering_asset_events[EVALUATION]), dag_run.partition_key)

    @task.branch
    def gate(evaluation: dict) -> str:
        from landfall.pipeline_tasks import gate as passes

        return "promote" if passes(evaluation) else "skip"

    @task(outlets=[PRODUCTION_MODEL])
    def promote(evaluation: dict, outlet_events=None) -> dict:
        from landfall.pipeline_tasks import promote as run

        promoted = run(evaluation)
        outlet_events[PRODUCTION_MODEL].extra = promoted
        return promoted

    @task
    def skip(evaluation: dict) -> str:
        return evaluation["reason"]

    @task(trigger_rule="none_failed_min_one_success")
    def notify(evaluation: dict, ti=None) -> dict:
        from landfall.pipeline_tasks import report

        # None when promote was skipped (gate said no, or the candidate already holds the alias).
        return report(evaluation, ti.xcom_pull(task_ids="promote"))

    decision = evaluation()
    branch = gate(decision)
    promoted = promote(decision)
    skipped = skip(decision)
    branch >> [promoted, skipped]
    [branch, promoted, skipped] >> notify(decision)


landfall_deploy()
