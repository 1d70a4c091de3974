"""A rolled-up day the whole-day checks refuse raises a `quarantine` event and never a `training_dataset`
event: a task's success raises an event for each of its outlets, so the two come from different tasks,
and the report runs only when the task that rolls days up skipped."""

from __future__ import annotations

import sys

from journeys import CHURN
from landfall.core import catalog
from landfall.core.paths import DAGS_FOLDER as DAGS


def _dags_that_roll_days_up():
    """(DAG, the id of its task that rolls a day up) for each DAG that does."""
    sys.path.insert(0, str(DAGS))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS), safe_mode=False)
    for dag_id, rolls_up in (
        (CHURN.preprocess_dag, catalog.PUBLISH_DATASET_TASK),
        (CHURN.freshness_dag, catalog.LATE_ROLLUP_TASK),
    ):
        yield bag.dags[dag_id], rolls_up


def test_the_refused_day_report_is_its_own_task_after_each_task_that_rolls_days_up():
    for dag, rolls_up in _dags_that_roll_days_up():
        dag_id = dag.dag_id
        for task in dag.tasks:  # no task raises both (its success would raise both)
            names = {outlet.name for outlet in task.outlets}
            assert not {CHURN.training_dataset, CHURN.quarantine} <= names, (dag_id, task.task_id)
        report = dag.get_task("report_refused_day")
        assert [outlet.name for outlet in report.outlets] == [CHURN.quarantine]
        assert report.trigger_rule == "all_skipped" and report.upstream_task_ids == {rolls_up}


def test_a_failed_rollup_still_fails_the_run_beside_the_report_it_skips():
    """all_skipped skips the report when the task before it failed; a skipped leaf alone would end the
    run as a success. A leaf with the default trigger rule after the same task is upstream_failed then,
    and an EmptyOperator so that no worker starts for it."""
    from airflow.providers.standard.operators.empty import EmptyOperator

    for dag, rolls_up in _dags_that_roll_days_up():
        leaves = [task for task in dag.tasks if not task.downstream_task_ids]
        guards = [
            task
            for task in leaves
            if isinstance(task, EmptyOperator)
            and task.trigger_rule == "all_success"
            and task.upstream_task_ids == {rolls_up}
        ]
        assert guards, (dag.dag_id, [task.task_id for task in leaves])
