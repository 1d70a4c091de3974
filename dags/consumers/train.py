"""Train: a hyperparameter search over the configured grid, one mapped task per trial, logged to
MLflow; each trial is fitted on the train split and compared on the validation split, and the best
becomes the `model_candidate` Asset of the partition.

Where a trial runs is configuration (`compute.profile`), not code: `local` runs the trainer's entry
function in the task's own process, `kubernetes` runs the same CLI in the trainer image as a
KubernetesPodOperator pod (GPU requests, tolerations, node affinity, volumes and secrets from
config/landfall.yaml).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import PartitionedAssetTimetable, TaskGroup, dag, task

from assets import MODEL_CANDIDATE, TRAINING_DATASET
from landfall.airflow.deadlines import chain_deadline
from landfall.airflow.notifier import LandfallNotifier
from landfall.core.settings import get_settings

default_args = {
    "retries": 1,
    "retry_delay": timedelta(seconds=15),
    "execution_timeout": timedelta(minutes=30),
    "on_failure_callback": LandfallNotifier("failure"),
}


@dag(
    dag_id="landfall_train",
    schedule=PartitionedAssetTimetable(assets=TRAINING_DATASET),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    deadline=chain_deadline(get_settings().deploy.deadline_minutes),
    tags=["landfall", "consumer", "train"],
    doc_md=__doc__,
)
def landfall_train():
    settings = get_settings()

    @task(multiple_outputs=False)
    def training_dataset(triggering_asset_events=None, dag_run=None) -> dict:
        """The window of `training.window_days` processed days ending at this run's partition."""
        from landfall.airflow.tasks.events import latest_event_extra
        from landfall.airflow.tasks.train import window_of

        events = list(triggering_asset_events[TRAINING_DATASET])
        return window_of(latest_event_extra(events, TRAINING_DATASET.name, dag_run.partition_key))

    with TaskGroup("search", tooltip="one mapped task per hyperparameter combination"):

        @task(multiple_outputs=False)
        def trials(dataset: dict) -> list[dict]:
            """The grid; after the window, so a run whose window was coalesced skips all of it."""
            from landfall.airflow.tasks.train import hyperparameter_trials

            return hyperparameter_trials()

        @task(multiple_outputs=False)
        def trial_arguments(dataset: dict, trials: list[dict], dag_run=None) -> list[list[str]]:
            """The trainer CLI argv of each trial: the same for the worker and for the pod."""
            from landfall.airflow.compute import trial_arguments as build

            return build(dataset, trials, dag_run.run_id)

        dataset = training_dataset()
        arguments = trial_arguments(dataset, trials(dataset))
        if settings.compute.profile == "kubernetes":
            # The trainer image in a GPU pod; it writes its result to /airflow/xcom/return.json.
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

    # all_done_min_one_success: failed trials are left out of the reduce; a skipped upstream (the window
    # coalesced into a newer one skips training_dataset and so every trial) skips it too.
    @task(multiple_outputs=False, outlets=[MODEL_CANDIDATE], trigger_rule="all_done_min_one_success")
    def select_best(results, dataset: dict, outlet_events=None, dag_run=None) -> dict:
        """Reduce over the lazy list of trial results; failed trials are left out."""
        from landfall.airflow.tasks.train import pick_best

        best = pick_best(list(results), dataset, dag_run.run_id)
        outlet_events[MODEL_CANDIDATE].extra = best
        return best

    select_best(results, dataset)


landfall_train()
