"""Rollback: move the `champion` alias back, to the previous champion or to a named version, and have the
scoring service serve it. Trigger it from the Airflow UI ("Trigger DAG" with a reason) or with
`landfall rollback [--to VERSION] --reason TEXT`, which triggers this DAG and follows it.

It takes the same one-slot pool as deploy's promotion, so a rollback and a promotion never interleave;
who asked and why are recorded as tags on both model versions, and a retry never rolls back twice.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task

from assets import PIPELINES, PipelineAssets
from landfall.airflow.notifier import LandfallNotifier


def rollback_dag(pipeline: PipelineAssets):
    name, production = pipeline.name, pipeline.production_model

    @dag(
        dag_id=pipeline.names.rollback_dag,
        schedule=None,
        catchup=False,
        max_active_runs=1,
        params={
            "to_version": Param(
                None,
                type=["null", "string"],
                pattern=r"^[0-9]{1,9}$",
                description="The version to serve; empty: the champion before the current one.",
            ),
            "reason": Param(
                "", type="string", minLength=3, maxLength=500, description="Why (recorded on both versions)."
            ),
            "requested_by": Param(
                None,
                type=["null", "string"],
                maxLength=100,
                description="Who asked (default: who triggered).",
            ),
        },
        default_args={
            "retries": 2,
            "retry_delay": timedelta(seconds=10),
            "on_failure_callback": LandfallNotifier("failure"),
        },
        tags=["landfall", name, "operations", "deploy"],
        doc_md=__doc__,
    )
    def landfall_rollback():
        @task(
            multiple_outputs=False,
            outlets=[production],
            pool=pipeline.names.promotion_pool,
            max_active_tis_per_dag=1,
        )
        def rollback(params=None, dag_run=None, outlet_events=None) -> dict:
            from landfall.airflow.tasks.deploy import rollback as run

            rolled = run(name, params, dag_run)
            outlet_events[production].extra = rolled
            return rolled

        @task(multiple_outputs=False)
        def activate(rolled: dict) -> dict:
            from landfall.airflow.tasks.deploy import activate as run

            return run(name, rolled)

        @task(multiple_outputs=False, trigger_rule="all_done_min_one_success")
        def notify(rolled: dict, ti=None) -> dict:
            from landfall.airflow.tasks.deploy import report_rollback

            return report_rollback(name, rolled, ti.xcom_pull(task_ids="activate"))

        rolled = rollback()
        activate(rolled) >> notify(rolled)

    return landfall_rollback()


for _pipeline in PIPELINES:
    rollback_dag(_pipeline)
