"""The body of the evaluate DAG's task: candidate and champion scored on the same held-out test split
(which no trial saw), and the gate's decision with the champion version it compared against."""

from __future__ import annotations

import logging
from typing import Any

from landfall.core.settings import get_settings

log = logging.getLogger(__name__)


def evaluate(pipeline: str, candidate: dict[str, Any]) -> dict[str, Any]:
    from airflow.exceptions import AirflowFailException

    from landfall.pipeline import plots, registry
    from landfall.pipeline.evaluation import Scored, decide, lower_bound, metrics_of
    from landfall.pipeline.training.models import UntrustedModel, load_trial_model
    from landfall.pipeline.training.trainer import predict
    from landfall.pipeline.window import read_sampled

    settings = get_settings(pipeline)
    metric, label, name = settings.training.metric, settings.landing.label, settings.mlflow.model_name
    client = registry.client()
    run_id = str(candidate["run_id"])
    # MLflow errors propagate (the task fails, retries, alerts): they never mean "no champion".
    current = registry.champion(name, client)
    try:
        candidate_model = load_trial_model(client, run_id, settings.mlflow.experiment)
        champion_model = None if current is None else load_trial_model(client, current.run_id, None)
    except UntrustedModel as error:
        raise AirflowFailException(str(error)) from None
    # The window's held-out rows (every k-th, bounded): candidate and champion are scored on this frame.
    test = read_sampled(candidate.get("test_uris") or [candidate["test_uri"]], candidate.get("test_every", 1))
    truth, predicted, probability = predict(candidate_model, test, label)
    candidate_scored = Scored(predicted, probability)
    candidate_metrics = metrics_of(truth, predicted, probability)
    champion_metrics, bound, curves = None, None, {"candidate": (truth, probability)}
    if champion_model is not None:
        _, champion_predicted, champion_probability = predict(champion_model, test, label)
        champion_scored = Scored(champion_predicted, champion_probability)
        champion_metrics = metrics_of(truth, champion_predicted, champion_probability)
        bound = lower_bound(truth, candidate_scored, champion_scored, metric, settings.deploy)
        curves[f"champion v{current.version}"] = (truth, champion_probability)
    baseline = champion_metrics[metric] if champion_metrics is not None else None
    decision = decide(candidate_metrics[metric], baseline, bound, settings.deploy)

    client.log_metric(run_id, f"eval_{metric}", decision.new_score)
    if baseline is not None:
        client.log_metric(run_id, f"champion_{metric}", baseline)
        client.log_metric(run_id, f"improvement_lower_bound_{metric}", bound)
    verdict = "deploy" if decision.should_deploy else "skip"
    client.set_tag(run_id, "landfall.decision", verdict)
    figures = {
        plots.CANDIDATE_VS_CHAMPION: plots.comparison_figure(candidate_metrics, champion_metrics, verdict)
    }
    if plots.has_both_classes(truth):
        figures[f"{plots.PLOTS_DIR}/roc_candidate_vs_champion.png"] = plots.roc_figure(curves)
    plots.log_figures(run_id, figures)
    log.info("Candidate %s: %s", run_id, decision.reason)
    canary_uri = write_canary(pipeline, candidate, candidate_model, label) if decision.should_deploy else None
    return {
        **decision.as_dict(),
        "metric": metric,
        "run_id": run_id,
        "partition": candidate.get("partition"),
        "test_rows": len(truth),
        "champion_version": None if current is None else str(current.version),
        "canary_uri": canary_uri,
    }


def write_canary(pipeline: str, candidate: dict[str, Any], model: Any, label: str) -> str | None:
    """What deploy's canary expects of the service: the canary rows preprocess wrote (the head of the
    partition's own test split, as clients send them) and the offline path's predictions for them (the
    same rows of the processed test split through the candidate), as one JSON object beside the splits."""
    import io

    import pandas as pd

    from landfall.airflow.tasks.ingest import s3_client
    from landfall.pipeline import s3 as s3ops
    from landfall.pipeline.canary import as_rows
    from landfall.pipeline.keys import canary_expectation_key
    from landfall.pipeline.training.trainer import predict
    from landfall.pipeline.window import read_head

    if not candidate.get("canary_uri"):
        return None  # a dataset prepared before the canary existed: deploy refuses it, saying why
    settings = get_settings(pipeline)
    s3 = s3_client(settings)
    bucket, _, key = str(candidate["canary_uri"]).removeprefix("s3://").partition("/")
    rows = pd.read_parquet(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    size = len(rows)
    _, predicted, probability = predict(model, read_head(str(candidate["test_uri"]), size), label)
    expected = {
        "run_id": candidate["run_id"],
        "rows": as_rows(rows),
        "predictions": [int(p) for p in predicted[:size]],
        "probabilities": [float(p) for p in probability[:size]],
    }
    target = canary_expectation_key(key, str(candidate["run_id"]))
    s3ops.put_json(s3, bucket, target, expected)
    return f"s3://{bucket}/{target}"
