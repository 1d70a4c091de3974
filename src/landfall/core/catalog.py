"""The one place that names each pipeline's DAGs, assets and pool, the tasks that produce each asset, the
chain.

Every pipeline has the same chain under its own names: DAG `landfall_<pipeline>_<stage>`, asset
`<pipeline>.<kind>` (in the Asset graph's group `<pipeline>`), pool `landfall_<pipeline>_champion`.
`chain_of(pipeline)` gives them all. Asset *objects* (with their URIs and the watcher) are built in
`dags/assets` from these names; the CLI, the benchmark, the follow-up helpers and the tests use these.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

# ---- tasks that other code refers to (the same in every pipeline's DAGs) -------------------------------
LANDED_TASK = "validate.landed_objects"
EXAMINE_TASK = "validate.validate_and_store"
PUBLISH_TASK = "publish.publish_raw_partition"
REPORT_QUARANTINE_TASK = "publish.report_quarantine"
TRIAL_TASK = "search.train_trial"
SELECT_BEST_TASK = "select_best"
COMPARE_TASK = "compare_with_champion"
PROMOTE_TASK = "promote"
PUBLISH_DATASET_TASK = "features.build_training_dataset"
LATE_ROLLUP_TASK = "roll_up_late_day"
DRIFT_TASK = "compare_with_reference"
RETRAIN_TASK = "search.drift_says_train"
STALE_CHAMPION_TASK = "retrain_stale_champion"


class Producer(NamedTuple):
    dag_id: str
    task_id: str


class Chain(NamedTuple):
    """One pipeline's names."""

    pipeline: str
    # DAGs
    ingest_dag: str
    preprocess_dag: str
    train_dag: str
    evaluate_dag: str
    deploy_dag: str
    rollback_dag: str  # manual: moves the alias back (`landfall rollback`)
    freshness_dag: str  # daily: alerts when a day's landing is late
    # assets
    landing: str
    raw: str
    quarantine: str
    training_dataset: str
    drift_report: str
    model_candidate: str
    evaluation: str
    production_model: str
    asset_group: str
    promotion_pool: str
    """One slot, taken by every task that moves this pipeline's champion alias: its compare-and-set never
    interleaves."""

    @property
    def after_ingest(self) -> tuple[str, str, str, str]:
        """The DAGs downstream of ingest, in the order a partition flows through them."""
        return (self.preprocess_dag, self.train_dag, self.evaluate_dag, self.deploy_dag)

    @property
    def asset_names(self) -> tuple[str, ...]:
        """Every asset of the pipeline, in the order data flows through them."""
        return (
            self.landing,
            self.raw,
            self.quarantine,
            self.training_dataset,
            self.drift_report,
            self.model_candidate,
            self.evaluation,
            self.production_model,
        )

    @property
    def dag_ids(self) -> tuple[str, ...]:
        return (self.ingest_dag, *self.after_ingest, self.rollback_dag, self.freshness_dag)

    @property
    def producers(self) -> dict[str, tuple[Producer, ...]]:
        """Who may raise each asset's events. A consumer acts only on events its producer tasks raised; an
        event posted through the REST API (no source task) or by any other task is refused."""
        return {
            self.raw: (Producer(self.ingest_dag, PUBLISH_TASK),),
            self.training_dataset: (
                Producer(self.preprocess_dag, PUBLISH_DATASET_TASK),
                # A day landed hour by hour whose hours are not all there by its deadline: the hours that are.
                Producer(self.freshness_dag, LATE_ROLLUP_TASK),
                # on_drift: a champion older than training.max_age_days, retrained on the newest day.
                Producer(self.freshness_dag, STALE_CHAMPION_TASK),
            ),
            self.drift_report: (
                Producer(self.preprocess_dag, DRIFT_TASK),
                Producer(self.freshness_dag, DRIFT_TASK),
            ),
            self.model_candidate: (Producer(self.train_dag, SELECT_BEST_TASK),),
            self.evaluation: (Producer(self.evaluate_dag, COMPARE_TASK),),
            self.production_model: (Producer(self.deploy_dag, PROMOTE_TASK),),
        }


@cache
def chain_of(pipeline: str) -> Chain:
    """The names of pipeline `pipeline`'s DAGs, assets and pool."""

    def dag(stage: str) -> str:
        return f"landfall_{pipeline}_{stage}"

    def asset(kind: str) -> str:
        return f"{pipeline}.{kind}"

    return Chain(
        pipeline=pipeline,
        ingest_dag=dag("ingest"),
        preprocess_dag=dag("preprocess"),
        train_dag=dag("train"),
        evaluate_dag=dag("evaluate"),
        deploy_dag=dag("deploy"),
        rollback_dag=dag("rollback"),
        freshness_dag=dag("freshness"),
        landing=asset("landing"),
        raw=asset("raw_daily"),
        quarantine=asset("quarantine"),
        training_dataset=asset("training_dataset"),
        drift_report=asset("drift_report"),
        model_candidate=asset("model_candidate"),
        evaluation=asset("evaluation"),
        production_model=asset("production_model"),
        asset_group=pipeline,
        promotion_pool=f"landfall_{pipeline}_champion",
    )


def producers_of(asset_name: str) -> tuple[Producer, ...]:
    """The producer tasks of an asset named by `chain_of` (`<pipeline>.<kind>`); none for any other."""
    pipeline, dot, _ = asset_name.partition(".")
    return chain_of(pipeline).producers.get(asset_name, ()) if dot else ()
