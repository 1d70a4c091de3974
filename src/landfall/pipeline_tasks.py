"""Bodies of the preprocess, train, evaluate and deploy tasks (the DAG files only wire them).

Large data never travels through XCom: tasks pass S3 URIs, run ids and metrics, and those small
values go through the object-storage XCom backend.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from landfall.settings import get_settings

log = logging.getLogger(__name__)


def latest_event_extra(events: list[Any], partition: str | None) -> dict[str, Any]:
    """The extra of the newest triggering event for this run's partition (events can merge into one run)."""
    matching = [
        e for e in events if partition is None or getattr(e, "partition_key", None) in (None, partition)
    ]
    if not matching:
        # Permanent: retrying cannot make an event appear, so fail at once (no retries). A run
        # triggered by hand, whatever its conf says, has no event and so can neither train nor deploy.
        from airflow.exceptions import AirflowFailException

        raise AirflowFailException(
            f"no triggering asset event for partition {partition!r}; this DAG runs when its upstream "
            "Asset is updated, not by hand (re-process history with `airflow backfill create` on "
            "landfall_ingest)"
        )
    newest = max(matching, key=lambda e: e.timestamp)
    return dict(newest.extra or {})


# ---- preprocess -------------------------------------------------------------------------------------


def preprocess(raw: dict[str, Any], partition: str) -> dict[str, Any]:
    """Raw partition -> features + train/test split under the processed prefix."""
    import pandas as pd

    from landfall.airflow_tasks import s3_client
    from landfall.features import split
    from landfall.ingest import put_verified
    from landfall.keys import processed_key

    settings = get_settings()
    storage = settings.storage
    s3 = s3_client()
    bucket, _, key = str(raw["uri"]).removeprefix("s3://").partition("/")
    frame = pd.read_parquet(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    train, test = split(frame, settings.landing, settings.training.test_fraction)
    uris = {}
    for name, part in (("train", train), ("test", test)):
        buffer = io.BytesIO()
        part.to_parquet(buffer, index=False)
        target = processed_key(storage, partition, name)
        put_verified(s3, storage.datasets_bucket, target, buffer.getvalue())
        uris[f"{name}_uri"] = f"s3://{storage.datasets_bucket}/{target}"
    features = [c for c in train.columns if c != settings.landing.label]
    log.info(
        "Partition %s: %d train / %d test rows, %d features", partition, len(train), len(test), len(features)
    )
    return {
        "partition": partition,
        "rows_train": len(train),
        "rows_test": len(test),
        "features": features,
        "source_sha256": raw.get("sha256"),
        **uris,
    }


# ---- train ------------------------------------------------------------------------------------------


def hyperparameter_trials() -> list[dict[str, Any]]:
    from landfall.trials import trial_grid

    trials = trial_grid(get_settings().training.grid)
    log.info("%d trials: %s", len(trials), [t["trial"] for t in trials])
    return trials


def trial_arguments(dataset: dict[str, Any], trials: list[dict[str, Any]], run_id: str) -> list[list[str]]:
    """The trainer CLI argv of each trial, identical for the local worker and the Kubernetes pod."""
    from landfall.compute import trial_arguments as build

    return build(dataset, trials, run_id)


def train_trial(arguments: list[str]) -> dict[str, Any]:
    """The local backend: the trainer CLI with the pod's argv, inside the worker."""
    from landfall.compute import run_trainer_locally

    return run_trainer_locally(arguments)


def pick_best(results: list[dict[str, Any] | None], dataset: dict[str, Any]) -> dict[str, Any]:
    from landfall.trials import select_best

    metric = get_settings().training.metric
    best = select_best(results, metric)
    failed = sum(1 for r in results if not r)
    log.info(
        "Best of %d trials (%d failed): %s %s=%.4f",
        len(results),
        failed,
        best["params"],
        metric,
        best["metrics"][metric],
    )
    return {
        **best,
        "metric": metric,
        "test_uri": dataset["test_uri"],
        "train_uri": dataset["train_uri"],
        "trials": len(results),
        "failed_trials": failed,
    }


# ---- evaluate ---------------------------------------------------------------------------------------


def evaluate(candidate: dict[str, Any]) -> dict[str, Any]:
    """Score candidate and champion on the same held-out split; return the gate's decision."""
    import mlflow

    from landfall import plots, registry
    from landfall.trainer import load_classifier, metrics_of, predict, read_parquet
    from landfall.trials import decide

    settings = get_settings()
    metric, label, name = settings.training.metric, settings.landing.label, settings.mlflow.model_name
    test = read_parquet(candidate["test_uri"])
    candidate_predictions = predict(load_classifier(candidate["model_uri"]), test, label)
    candidate_metrics = metrics_of(*candidate_predictions)
    current = registry.champion(name)
    truth, _, candidate_probability = candidate_predictions
    champion_metrics, curves = None, {"candidate": (truth, candidate_probability)}
    if current is not None:
        champion_predictions = predict(load_classifier(f"models:/{name}@{registry.CHAMPION}"), test, label)
        champion_metrics = metrics_of(*champion_predictions)
        curves[f"champion v{current.version}"] = (truth, champion_predictions[2])
    new_score = candidate_metrics[metric]
    baseline = champion_metrics[metric] if champion_metrics is not None else None
    decision = decide(new_score, baseline, settings.deploy)
    client = mlflow.MlflowClient()
    client.log_metric(candidate["run_id"], f"eval_{metric}", new_score)
    if baseline is not None:
        client.log_metric(candidate["run_id"], f"champion_{metric}", baseline)
    verdict = "deploy" if decision.should_deploy else "skip"
    client.set_tag(candidate["run_id"], "landfall.decision", verdict)
    figures = {
        plots.CANDIDATE_VS_CHAMPION: plots.comparison_figure(candidate_metrics, champion_metrics, verdict)
    }
    if plots.has_both_classes(truth):
        figures[f"{plots.PLOTS_DIR}/roc_candidate_vs_champion.png"] = plots.roc_figure(curves)
    plots.log_figures(candidate["run_id"], figures)
    log.info("Candidate %s: %s", candidate["run_id"], decision.reason)
    return {
        "should_deploy": decision.should_deploy,
        "new_score": decision.new_score,
        "baseline_score": decision.baseline_score,
        "improvement": decision.improvement,
        "reason": decision.reason,
        "metric": metric,
        "run_id": candidate["run_id"],
        "model_uri": candidate["model_uri"],
        "partition": candidate.get("partition"),
        "champion_version": current.version if current is not None else None,
    }


# ---- deploy -----------------------------------------------------------------------------------------


def gate(evaluation: dict[str, Any]) -> bool:
    """Re-apply the gate from config to the evaluation's scores: nothing in run conf or params can pass it."""
    from landfall.trials import decide

    baseline = evaluation["baseline_score"] if evaluation.get("champion_version") else None
    decision = decide(float(evaluation["new_score"]), baseline, get_settings().deploy)
    log.info("Gate: %s", decision.reason)
    return decision.should_deploy


def promote(evaluation: dict[str, Any]) -> dict[str, Any]:
    from airflow.exceptions import AirflowSkipException

    from landfall import registry

    name = get_settings().mlflow.model_name
    promotion = registry.promote(name, evaluation["run_id"], evaluation["model_uri"])
    if not promotion.moved:
        raise AirflowSkipException(
            f"version {promotion.version} (run {evaluation['run_id']}) already holds '{registry.CHAMPION}'"
        )
    log.info("Promoted %s version %s (was %s)", name, promotion.version, promotion.previous_version)
    return {
        **promotion.as_dict(),
        "model_name": name,
        "run_id": evaluation["run_id"],
        "score": evaluation["new_score"],
        "partition": evaluation.get("partition"),
    }


def report(evaluation: dict[str, Any], promoted: dict[str, Any] | None) -> dict[str, Any]:
    from landfall.notify import send_alert

    if promoted:
        outcome, text = (
            "deployed",
            (
                f"Deployed {promoted['model_name']} v{promoted['version']} "
                f"({evaluation['metric']} {evaluation['new_score']:.4f}): {evaluation['reason']}"
            ),
        )
    else:
        outcome, text = "skipped", f"Not deployed (run {evaluation['run_id']}): {evaluation['reason']}"
    send_alert(outcome, text, {"evaluation": evaluation, "promotion": promoted})
    return {"outcome": outcome, "message": text}
