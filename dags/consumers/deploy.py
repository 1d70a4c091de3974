"""Deploy: the gate from config (floor, minimum improvement, paired-bootstrap significance) decides;
the canary loads the candidate into the scoring service's staging slot and checks that the service
answers held-out rows exactly as the offline evaluation did (and fast enough); deploy then registers the
model version and moves the `champion` alias - only if the champion is still the version the evaluation
compared against (compare-and-set), at most once per candidate - and the service activates it. A failed
canary alerts and leaves the champion and the service as they were. A notification reports either way.

One promotion at a time: one active run, one `promote` instance, and a one-slot pool
(`landfall_champion`, created by the launcher) that every task moving the alias takes, so the check and
the move never interleave with another move. Evaluation needs no lock: it records the version it
compared against, and this check catches any move since.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import PartitionedAssetTimetable, dag, task

from assets import PIPELINES, PipelineAssets
from landfall.airflow.deadlines import chain_deadline
from landfall.airflow.notifier import LandfallNotifier


def deploy_defaults(retry_delay_s: float) -> dict:
    return {
        # 10 s, 20 s, 40 s (deploy.retry_delay_s, doubling): rides out an MLflow restart, then fails
        # loudly (and alerts) within ~1.5 min.
        "retries": 3,
        "retry_delay": timedelta(seconds=retry_delay_s),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(minutes=10),
        "on_failure_callback": LandfallNotifier("failure"),
    }


def deploy_dag(pipeline: PipelineAssets):
    name, evaluations, production = pipeline.name, pipeline.evaluation, pipeline.production_model
    default_args = deploy_defaults(pipeline.settings.deploy.retry_delay_s)

    @dag(
        dag_id=pipeline.names.deploy_dag,
        schedule=PartitionedAssetTimetable(assets=evaluations),
        catchup=False,
        max_active_runs=1,
        default_args=default_args,
        deadline=chain_deadline(pipeline.settings.deploy.deadline_minutes),
        tags=["landfall", name, "consumer", "deploy"],
        doc_md=__doc__,
    )
    def landfall_deploy():
        @task(multiple_outputs=False)
        def evaluation(triggering_asset_events=None, dag_run=None) -> dict:
            from landfall.airflow.tasks.events import latest_event_extra

            events = list(triggering_asset_events[evaluations])
            return latest_event_extra(events, evaluations.name, dag_run.partition_key)

        @task.branch
        def gate(evaluation: dict) -> str:
            from landfall.airflow.tasks.deploy import gate as passes

            return "canary" if passes(name, evaluation) else "skip"

        @task(multiple_outputs=False)
        def canary(evaluation: dict) -> dict:
            from landfall.airflow.tasks.deploy import canary as run

            return run(name, evaluation)

        @task(
            multiple_outputs=False,
            outlets=[production],
            pool=pipeline.names.promotion_pool,
            max_active_tis_per_dag=1,
        )
        def promote(evaluation: dict, outlet_events=None, dag_run=None) -> dict:
            from landfall.airflow.tasks.deploy import promote as run

            promoted = run(name, evaluation, dag_run.run_id)
            outlet_events[production].extra = promoted
            return promoted

        @task(multiple_outputs=False)
        def activate(promoted: dict) -> dict:
            from landfall.airflow.tasks.deploy import activate as run

            return run(name, promoted)

        @task(multiple_outputs=False)
        def skip(evaluation: dict) -> str:
            return evaluation["reason"]

        # After the gate said no, or after the promotion and activation; a failed canary or activation has
        # alerted already (and fails the run), so this does not run then.
        @task(multiple_outputs=False, trigger_rule="none_failed_min_one_success")
        def notify(evaluation: dict, ti=None) -> dict:
            from landfall.airflow.tasks.deploy import report

            # Each None when its task was skipped (gate said no, a stale evaluation, already champion).
            pulled = [ti.xcom_pull(task_ids=task_id) for task_id in ("canary", "promote", "activate")]
            return report(name, evaluation, *pulled)

        decision = evaluation()
        branch = gate(decision)
        canaried = canary(decision)
        promoted = promote(decision)
        activated = activate(promoted)
        skipped = skip(decision)
        branch >> [canaried, skipped]
        canaried >> promoted
        [branch, activated, skipped] >> notify(decision)

    return landfall_deploy()


for _pipeline in PIPELINES:
    deploy_dag(_pipeline)
