"""Train: a hyperparameter search over the configured grid, one mapped task per trial, logged to
MLflow; each trial is fitted on the train split and compared on the validation split, and the best
becomes the `model_candidate` Asset of the partition. With `training.retrain: on_drift` a day is searched
only when its drift report says the data moved (or the champion is older than `training.max_age_days`);
the run of a day that did not move skips its search, shown as skipped.

Where a trial runs is configuration (`compute.profile`), not code: `local` runs the trainer's entry
function in the task's own process, `kubernetes` runs the same CLI in the trainer image as a
KubernetesPodOperator pod (GPU requests, tolerations, node affinity, volumes and secrets from
config/landfall.yaml).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import PartitionedAssetTimetable, TaskGroup, dag, task

from assets import PIPELINES, PipelineAssets
from landfall.airflow.deadlines import chain_deadline
from landfall.airflow.notifier import LandfallNotifier

default_args = {
    "retries": 1,
    "retry_delay": timedelta(seconds=15),
    "execution_timeout": timedelta(minutes=30),
    "on_failure_callback": LandfallNotifier("failure"),
}


def train_dag(pipeline: PipelineAssets):
    name, settings = pipeline.name, pipeline.settings
    datasets, candidate = pipeline.training_dataset, pipeline.model_candidate

    @dag(
        dag_id=pipeline.names.train_dag,
        schedule=PartitionedAssetTimetable(assets=datasets),
        catchup=False,
        max_active_runs=1,
        default_args=default_args,
        deadline=chain_deadline(settings.deploy.deadline_minutes),
        tags=["landfall", name, "consumer", "train"],
        doc_md=__doc__,
    )
    def landfall_train():
        @task(multiple_outputs=False)
        def training_dataset(triggering_asset_events=None, dag_run=None) -> dict:
            """The window of `training.window_days` processed days ending at this run's partition."""
            from landfall.airflow.tasks.events import latest_event_extra
            from landfall.airflow.tasks.train import window_of

            events = list(triggering_asset_events[datasets])
            return window_of(name, latest_event_extra(events, datasets.name, dag_run.partition_key))

        with TaskGroup("search", tooltip="one mapped task per hyperparameter combination"):

            @task(multiple_outputs=False)
            def trials(dataset: dict) -> list[dict]:
                """The grid; after the window, so a run whose window was coalesced skips all of it."""
                from landfall.airflow.tasks.train import hyperparameter_trials

                return hyperparameter_trials(name)

            @task(multiple_outputs=False)
            def trial_arguments(dataset: dict, trials: list[dict], dag_run=None) -> list[list[str]]:
                """The trainer CLI argv of each trial: the same for the worker and for the pod."""
                from landfall.airflow.compute import trial_arguments as build
                from landfall.core.settings import get_settings

                return build(dataset, trials, dag_run.run_id, get_settings(name))

            dataset = training_dataset()
            grid = trials(dataset)
            if settings.training.retrain == "on_drift":

                @task.short_circuit(task_id="drift_says_train")  # RETRAIN_TASK, in the group
                def drift_says_train(dataset: dict, ti=None) -> bool:
                    """on_drift: the day's drift report and the champion's age say whether to search;
                    False skips the search and everything after it (no candidate for this day)."""
                    from landfall.airflow.tasks.retrain import train_or_skip

                    return train_or_skip(name, dataset, ti)

                drift_says_train(dataset) >> grid
            arguments = trial_arguments(dataset, grid)
            if settings.compute.profile == "kubernetes":
                from landfall.airflow.compute import kubernetes_trial_operator

                pods = kubernetes_trial_operator(max_active_tis_per_dag=settings.training.max_parallel_trials)
                results = pods.expand(arguments=arguments).output
            else:

                @task(
                    task_id="train_trial",
                    multiple_outputs=False,
                    max_active_tis_per_dag=settings.training.max_parallel_trials,
                    map_index_template="{{ trial_name }}",
                )
                def train_trial(arguments: list[str]) -> dict:
                    from airflow.sdk import get_current_context

                    from landfall.airflow.compute import run_trainer_locally, trial_name

                    get_current_context()["trial_name"] = trial_name(arguments)
                    return run_trainer_locally(arguments)

                results = train_trial.expand(arguments=arguments)

        @task(multiple_outputs=False, outlets=[candidate], trigger_rule="all_done_min_one_success")
        def select_best(results, dataset: dict, outlet_events=None, dag_run=None) -> dict:
            """Reduce over the lazy list of trial results; failed trials are left out."""
            from landfall.airflow.tasks.train import pick_best

            best = pick_best(name, list(results), dataset, dag_run.run_id)
            outlet_events[candidate].extra = best
            return best

        select_best(results, dataset)

    return landfall_train()


for _pipeline in PIPELINES:
    train_dag(_pipeline)
