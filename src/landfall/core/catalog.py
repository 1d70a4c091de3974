"""The one place that names the pipeline: DAG ids, asset names, the tasks that produce each asset, the chain.

Asset *objects* (with their URIs and the watcher) are built in `dags/assets` from these names; the CLI,
the benchmark, the follow-up helpers and the tests import the names from here.
"""

from __future__ import annotations

from typing import NamedTuple

# ---- DAGs -----------------------------------------------------------------------------------------------
INGEST_DAG = "landfall_ingest"
PREPROCESS_DAG = "landfall_preprocess"
TRAIN_DAG = "landfall_train"
EVALUATE_DAG = "landfall_evaluate"
DEPLOY_DAG = "landfall_deploy"
ROLLBACK_DAG = "landfall_rollback"  # manual: moves the alias back (`landfall rollback`)
FRESHNESS_DAG = "landfall_freshness"  # daily: alerts when a day's landing is late

CHAIN = (PREPROCESS_DAG, TRAIN_DAG, EVALUATE_DAG, DEPLOY_DAG)
"""The DAGs downstream of ingest, in the order a partition flows through them."""

# ---- assets ---------------------------------------------------------------------------------------------
LANDING = "landing"
RAW = "raw_daily"
QUARANTINE = "quarantine"
TRAINING_DATASET = "training_dataset"
MODEL_CANDIDATE = "model_candidate"
EVALUATION = "evaluation"
PRODUCTION_MODEL = "production_model"
ASSET_GROUP = "landfall"

# ---- tasks that other code refers to --------------------------------------------------------------------
LANDED_TASK = "validate.landed_objects"
EXAMINE_TASK = "validate.validate_and_store"
PUBLISH_TASK = "publish.publish_raw_partition"
REPORT_QUARANTINE_TASK = "publish.report_quarantine"
TRIAL_TASK = "search.train_trial"
SELECT_BEST_TASK = "select_best"
COMPARE_TASK = "compare_with_champion"
PROMOTE_TASK = "promote"

PROMOTION_POOL = "landfall_champion"
"""One slot, taken by every task that moves the champion alias: its compare-and-set never interleaves."""


class Producer(NamedTuple):
    dag_id: str
    task_id: str


PUBLISH_DATASET_TASK = "features.build_training_dataset"
LATE_ROLLUP_TASK = "roll_up_late_day"

PRODUCERS: dict[str, tuple[Producer, ...]] = {
    RAW: (Producer(INGEST_DAG, PUBLISH_TASK),),
    TRAINING_DATASET: (
        Producer(PREPROCESS_DAG, PUBLISH_DATASET_TASK),
        # A day landed hour by hour whose hours are not all there by its deadline: the hours that are.
        Producer(FRESHNESS_DAG, LATE_ROLLUP_TASK),
    ),
    MODEL_CANDIDATE: (Producer(TRAIN_DAG, SELECT_BEST_TASK),),
    EVALUATION: (Producer(EVALUATE_DAG, COMPARE_TASK),),
    PRODUCTION_MODEL: (Producer(DEPLOY_DAG, PROMOTE_TASK),),
}
"""Who may raise each asset's events. A consumer acts only on events its producer tasks raised; an event
posted through the REST API (no source task) or by any other task is refused."""
