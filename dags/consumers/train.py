"""Train: a hyperparameter search over the configured grid, one mapped task per trial, logged to
MLflow; the best trial becomes the `model_candidate` Asset of the partition.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import PartitionedAssetTimetable, TaskGroup, dag, task

from assets import MODEL_CANDIDATE, TRAINING_DATASET
from landfall.notify import LandfallNotifier
from landfall.settings import get_settings

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
    tags=["landfall", "consumer", "train"],
    doc_md=__doc__,
)
def landfall_train():
    @task
    def training_dataset(triggering_asset_events=None, dag_run=None) -> dict:
        from landfall.pipeline_tasks import latest_event_extra

        return latest_event_extra(list(triggering_asset_events[TRAINING_DATASET]), dag_run.partition_key)

    with TaskGroup("search", tooltip="one mapped task per hyperparameter combination"):

        @task
        def trials() -> list[dict]:
            from landfall.pipeline_tasks import hyperparameter_trials

            return hyperparameter_trials()

        @task(
            max_active_tis_per_dag=get_settings().training.max_parallel_trials,
            map_index_template="{{ trial_name }}",
        )
        def train_trial(dataset: dict, hyperparameters: dict, dag_run=None) -> dict:
            from airflow.sdk import get_current_context

            from landfall.pipeline_tasks import train_trial as run

            get_current_context()["trial_name"] = hyperparameters["trial"]
            return run(dataset, hyperparameters, dag_run.run_id)

        dataset = training_dataset()
        results = train_trial.partial(dataset=dataset).expand(hyperparameters=trials())

    @task(outlets=[MODEL_CANDIDATE], trigger_rule="all_done")
    def select_best(results, dataset: dict, outlet_events=None) -> dict:
        """Reduce over the lazy list of trial results; failed trials are left out."""
        from landfall.pipeline_tasks import pick_best

        best = pick_best(list(results), dataset)
        outlet_events[MODEL_CANDIDATE].extra = best
        return best

    select_best(results, dataset)


landfall_train()
