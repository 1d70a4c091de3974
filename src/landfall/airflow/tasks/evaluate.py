"""The body of the evaluate DAG's task: candidate and champion scored on the same held-out test split
(which no trial saw), and the gate's decision with the champion version it compared against."""

from __future__ import annotations

import logging
from typing import Any

from landfall.core.settings import get_settings

log = logging.getLogger(__name__)


def evaluate(pipeline: str, candidate: dict[str, Any]) -> dict[str, Any]:
    from airflow.sdk.exceptions import AirflowFailException

    from landfall.pipeline import plots, registry
    from landfall.pipeline.evaluation import decide, lower_bound
    from landfall.pipeline.metrics import METRICS, NotAnAnswer, baseline_of, metrics_of, trivial_answers
    from landfall.pipeline.training.models import UntrustedModel, load_trial_model
    from landfall.pipeline.training.trainer import answer_split
    from landfall.pipeline.user_code import use_code_root
    from landfall.pipeline.window import read_sampled

    settings = get_settings(pipeline)
    use_code_root(settings.code_root)  # a model of the pipeline's own estimator class loads from there
    training, label, name = settings.training, settings.landing.label, settings.mlflow.model_name
    metric, task, trusted = training.metric, training.task, training.trusted_types
    client = registry.client()
    run_id = str(candidate["run_id"])
    # MLflow errors propagate (the task fails, retries, alerts): they never mean "no champion".
    current = registry.champion(name, client)
    try:
        candidate_model = load_trial_model(client, run_id, settings.mlflow.experiment, trusted)
        champion_model = None if current is None else load_trial_model(client, current.run_id, None, trusted)
    except UntrustedModel as error:
        raise AirflowFailException(str(error)) from None
    # The window's held-out rows (every k-th, bounded): candidate and champion are scored on this frame.
    test = read_sampled(candidate.get("test_uris") or [candidate["test_uri"]], candidate.get("test_every", 1))
    try:
        truth, candidate_answers = answer_split(candidate_model, test, label, task)
    except NotAnAnswer as error:
        raise AirflowFailException(
            f"the candidate of run {run_id} cannot answer the test rows: {error}"
        ) from None
    candidate_metrics = metrics_of(task, truth, candidate_answers)
    answers = {"candidate": candidate_answers}
    champion_metrics, bound, trivial_score = None, None, None
    if champion_model is not None:
        champion_answers = _champion_answers(client, current, champion_model, candidate, test, label, task)
        answers[f"champion v{current.version}"] = champion_answers
        champion_metrics = metrics_of(task, truth, champion_answers)
        bound = lower_bound(truth, candidate_answers, champion_answers, metric, settings.deploy)
    else:
        # What a model that learned nothing scores on the same rows (the train split's majority class or
        # mean, recorded by the trial; the test split's own for a result from before it was recorded).
        baseline = candidate.get("baseline") or baseline_of(task, test[label])
        trivial_score = METRICS[metric].compute(truth, trivial_answers(task, baseline, len(truth)))
    champion_score = champion_metrics[metric] if champion_metrics is not None else None
    decision = decide(
        metric, candidate_metrics[metric], champion_score, bound, settings.deploy, trivial_score
    )

    client.log_metric(run_id, f"eval_{metric}", decision.new_score)
    if champion_score is not None:
        client.log_metric(run_id, f"champion_{metric}", champion_score)
        client.log_metric(run_id, f"improvement_lower_bound_{metric}", bound)
    if trivial_score is not None:
        client.log_metric(run_id, f"trivial_{metric}", trivial_score)
    verdict = "deploy" if decision.should_deploy else "skip"
    client.set_tag(run_id, "landfall.decision", verdict)
    figures = {
        plots.CANDIDATE_VS_CHAMPION: plots.comparison_figure(candidate_metrics, champion_metrics, verdict),
        **plots.evaluation_figures(task, truth, answers),
    }
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


def _champion_answers(
    client: Any, current: Any, model: Any, candidate: dict[str, Any], test: Any, label: str, task: str
) -> Any:
    """The champion's answers on the candidate's test rows, or a failure saying why it cannot be compared
    (never "no champion"): built by another features function, or not an answer of this task."""
    from airflow.sdk.exceptions import AirflowFailException

    from landfall.pipeline.metrics import NotAnAnswer
    from landfall.pipeline.training.trainer import answer_split

    mine = client.get_run(str(candidate["run_id"])).data.tags.get("landfall.features", "schema")
    theirs = client.get_run(current.run_id).data.tags.get("landfall.features", "schema")
    why = None
    if mine != theirs:
        why = f"it was trained on features {theirs!r} and the candidate on {mine!r}"
    else:
        try:
            return answer_split(model, test, label, task)[1]
        except (NotAnAnswer, ValueError, KeyError) as error:  # another task, other columns
            why = f"it cannot answer the candidate's test rows ({type(error).__name__}: {error})"
    raise AirflowFailException(
        f"the champion v{current.version} cannot be compared with the candidate: {why}. Nothing is promoted. "
        "After changing a pipeline's features or task, remove the `champion` alias of its registered model "
        "(MLflow UI, or MlflowClient().delete_registered_model_alias) so that the next candidate is judged "
        "against a model that learned nothing, or restore the features the champion was trained on"
    )


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
    from landfall.pipeline.metrics import as_json
    from landfall.pipeline.training.trainer import answer_split
    from landfall.pipeline.window import read_head

    if not candidate.get("canary_uri"):
        return None  # a dataset prepared before the canary existed: deploy refuses it, saying why
    settings = get_settings(pipeline)
    s3 = s3_client(settings)
    bucket, _, key = str(candidate["canary_uri"]).removeprefix("s3://").partition("/")
    rows = pd.read_parquet(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    size = len(rows)
    task = settings.training.task
    _, answers = answer_split(model, read_head(str(candidate["test_uri"]), size), label, task)
    expected = {"run_id": candidate["run_id"], "rows": as_rows(rows), **as_json(answers.head(size))}
    target = canary_expectation_key(key, str(candidate["run_id"]))
    s3ops.put_json(s3, bucket, target, expected)
    return f"s3://{bucket}/{target}"
