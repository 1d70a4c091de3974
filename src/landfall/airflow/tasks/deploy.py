"""The bodies of the deploy DAG's tasks: the gate from config, the canary on the scoring service, the
compare-and-set promotion, the service's activation, the report; and the rollback DAG's."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from landfall.core.settings import Settings, get_settings

log = logging.getLogger(__name__)

SERVING_TOKEN_ENV = "LANDFALL_SERVING_TOKEN"
CANARY_BATCHES = 4


def serving_client(settings: Settings) -> Any:
    """The scoring service: `serving.url`, or the embedded stack's; its token from the environment."""
    from landfall.serving.client import ServingClient

    token = os.environ.get(SERVING_TOKEN_ENV)
    if not token:
        raise RuntimeError(
            f"{SERVING_TOKEN_ENV} is not set: the worker needs the scoring service's token "
            "(`landfall env` prints it; in a cluster, a Secret)"
        )
    url = settings.serving.url or f"http://{settings.stack.host}:{settings.stack.ports.serving}"
    return ServingClient(url, token, pipeline=settings.pipeline)


def gate(pipeline: str, evaluation: dict[str, Any]) -> bool:
    """Re-apply the gate from config to the evaluation's scores: nothing in run conf or params can pass it."""
    from landfall.pipeline.evaluation import decide

    settings = get_settings(pipeline)
    metric = settings.training.metric
    if evaluation.get("metric", metric) != metric:
        log.info("Gate: the evaluation scored %s and training.metric is now %s", evaluation["metric"], metric)
        return False
    # Against the champion when there was one, else against what a model that learned nothing scored.
    champion = evaluation.get("champion_version") is not None
    baseline = float(evaluation["baseline_score"])
    decision = decide(
        metric,
        float(evaluation["new_score"]),
        baseline if champion else None,
        evaluation.get("lower_bound"),
        settings.deploy,
        None if champion else baseline,
    )
    log.info("Gate: %s", decision.reason)
    return decision.should_deploy


def canary(pipeline: str, evaluation: dict[str, Any]) -> dict[str, Any]:
    """Load the candidate into the service's staging slot and check that it answers the canary rows as
    the offline evaluation did, fast enough. A failure alerts and fails the task without retries: the
    alias and the service stay as they are. The service being away is an ordinary error (retried)."""
    from airflow.sdk.exceptions import AirflowFailException

    from landfall.airflow.tasks.ingest import s3_client
    from landfall.pipeline.alerts import Alerts
    from landfall.pipeline.canary import run_canary
    from landfall.pipeline.s3 import get_json

    settings = get_settings(pipeline)
    run_id = str(evaluation["run_id"])
    if not evaluation.get("canary_uri"):
        raise AirflowFailException(
            f"the evaluation of run {run_id} carries no canary sample (its dataset was prepared before "
            "the canary existed): re-land the day to promote from it"
        )
    bucket, _, key = str(evaluation["canary_uri"]).removeprefix("s3://").partition("/")
    stored = get_json(s3_client(settings), bucket, key)
    expected = stored[0] if stored else {}
    if expected.get("run_id") != run_id:
        raise AirflowFailException(
            f"the canary sample at {evaluation['canary_uri']} is missing or not run {run_id}'s"
        )
    client = serving_client(settings)
    started = time.perf_counter()
    staged = client.stage(run_id)
    report = run_canary(
        expected["rows"],
        expected,
        lambda rows: client.predict_staged(run_id, rows),
        CANARY_BATCHES,
        settings.deploy.canary_max_latency_ms,
        settings.deploy.canary_tolerance,
    )
    result = {
        **report.as_dict(),
        "load_s": staged["load_s"],
        "canary_s": round(time.perf_counter() - started, 3),
    }
    if not report.passed:
        text = f"Canary failed for run {run_id}: {report.reason}; the champion and the service are unchanged"
        Alerts(settings.notify.webhook_url).send(
            "canary_failed", text, {"evaluation": evaluation, "canary": result}
        )
        raise AirflowFailException(text)
    log.info("Canary passed in %.2f s: %s", result["canary_s"], report.reason)
    return result


def promote(pipeline: str, evaluation: dict[str, Any], airflow_run_id: str) -> dict[str, Any]:
    """Register and move the alias, only if the champion is still the one the evaluation beat."""
    from airflow.sdk.exceptions import AirflowSkipException

    from landfall.pipeline import registry
    from landfall.pipeline.training.models import run_model_uri

    name = get_settings(pipeline).mlflow.model_name
    run_id = str(evaluation["run_id"])
    promotion = registry.promote(
        name,
        run_id,
        run_model_uri(run_id),
        evaluation.get("champion_version"),
        promoted_by=airflow_run_id,
        mlflow_client=registry.client(),
    )
    if not promotion.moved:
        raise AirflowSkipException(promotion.reason)
    log.info("Promoted %s: %s", name, promotion.reason)
    return {
        **promotion.as_dict(),
        "model_name": name,
        "run_id": run_id,
        "score": evaluation["new_score"],
        "partition": evaluation.get("partition"),
        "moved_at": time.time(),  # activate measures alias move -> served from here
    }


def activate(pipeline: str, moved: dict[str, Any]) -> dict[str, Any]:
    """Make the service serve the version that now holds the alias, and wait until it answers with it.
    Kubernetes profile: patch the Deployment (its pods roll); locally: tell the service to sync now.
    Measured from the alias move (the promote or rollback task), so the task's own start-up counts."""
    settings = get_settings(pipeline)
    client = serving_client(settings)
    if settings.compute.profile == "kubernetes":
        from landfall.airflow.serving_k8s import patch_deployment

        patch_deployment(settings, str(moved["version"]), str(moved["run_id"]))
    else:
        client.activate()
    client.wait_for_version(str(moved["version"]), settings.serving.activate_timeout_s)
    seconds = round(time.time() - float(moved["moved_at"]), 3)
    log.info("The scoring service serves version %s, %.2f s after the alias moved", moved["version"], seconds)
    return {"served_version": str(moved["version"]), "alias_to_serving_s": seconds}


def report(
    pipeline: str,
    evaluation: dict[str, Any],
    canaried: dict[str, Any] | None,
    promoted: dict[str, Any] | None,
    activation: dict[str, Any] | None,
) -> dict[str, Any]:
    """One notification per deploy run that reached a decision: deployed (and served), or not and why."""
    from landfall.pipeline import registry
    from landfall.pipeline.alerts import Alerts

    settings = get_settings(pipeline)
    if promoted and activation:
        outcome = "deployed"
        text = (
            f"Deployed {promoted['model_name']} v{promoted['version']} "
            f"({evaluation['metric']} {evaluation['new_score']:.4f}): {evaluation['reason']}; served "
            f"{activation['alias_to_serving_s']:.1f} s after the alias moved"
        )
    else:
        outcome, reason = "skipped", evaluation["reason"]
        if evaluation.get("should_deploy"):
            name, client = settings.mlflow.model_name, registry.client()
            current = registry.champion_version(name, client)
            mine = registry.version_for_run(name, str(evaluation["run_id"]), client)
            if mine is not None and mine.tags.get(registry.ROLLED_BACK_AT_TAG):
                reason = (
                    f"this candidate (v{mine.version}) was rolled back: it is not promoted again "
                    f"(`landfall rollback --to {mine.version}` restores it on purpose)"
                )
            elif current != evaluation.get("champion_version"):
                reason = (
                    f"the champion moved to v{current} after this candidate was compared with "
                    f"v{evaluation.get('champion_version')}: a stale evaluation is not promoted"
                )
            else:
                reason = "the candidate already holds the champion alias"
        text = f"Not deployed (run {evaluation['run_id']}): {reason}"
    details = {"evaluation": evaluation, "canary": canaried, "promotion": promoted, "activation": activation}
    Alerts(settings.notify.webhook_url).send(outcome, text, details)
    return {"outcome": outcome, "message": text}


def rollback(pipeline: str, params: dict[str, Any], dag_run: Any) -> dict[str, Any]:
    """The rollback DAG's move of the alias; the request is named by its run: a retry finishes a move
    that failed, or moves nothing (`moved` false) once the request is done or overtaken."""
    from airflow.sdk.exceptions import AirflowFailException

    from landfall.pipeline import registry

    settings = get_settings(pipeline)
    who = params.get("requested_by") or getattr(dag_run, "triggering_user_name", None) or "unknown"
    try:
        done = registry.rollback(
            settings.mlflow.model_name,
            params.get("to_version") or None,
            str(params["reason"]),
            by=f"{who} (run {dag_run.run_id})",
            mlflow_client=registry.client(),
            experiment=settings.mlflow.experiment,
        )
    except registry.RollbackRefused as error:
        raise AirflowFailException(f"rollback refused: {error}") from None
    if done.moved:
        log.info(
            "Rolled back %s to version %s (from %s): %s",
            settings.mlflow.model_name,
            done.version,
            done.rolled_back_from,
            done.reason,
        )
    else:
        log.info("%s", _nothing_moved(done.as_dict()))
    return {**done.as_dict(), "model_name": settings.mlflow.model_name, "moved_at": time.time()}


def _nothing_moved(rolled: dict[str, Any]) -> str:
    """What a rollback call that moved nothing did (its request done before, or overtaken)."""
    if rolled.get("result") == "overtaken":
        return (
            f"nothing moved: request {rolled['by']} was overtaken before its alias move (the champion or a "
            f"later request changed first), so it does not roll back v{rolled['rolled_back_from']} "
            f"(champion v{rolled['version']})"
        )
    return f"nothing moved: request {rolled['by']} was already done (champion v{rolled['version']})"


def report_rollback(
    pipeline: str, rolled: dict[str, Any], activation: dict[str, Any] | None
) -> dict[str, Any]:
    """The rollback DAG's alert: what moved (and whether the service serves it), or that nothing did."""
    from landfall.pipeline.alerts import Alerts

    if not rolled.get("moved", True):
        text = _nothing_moved(rolled)
        Alerts(get_settings(pipeline).notify.webhook_url).send(
            "rollback_nothing_moved", text, {"rollback": rolled, "activation": activation}
        )
        return {"outcome": "nothing_moved", "message": text}
    text = (
        f"Rolled back {rolled['model_name']} to v{rolled['version']} (from v{rolled['rolled_back_from']}) "
        f"by {rolled['by']}: {rolled['reason']}"
    )
    if activation is None:
        text += (
            "; the scoring service did not confirm it (see the activate task): it follows the alias "
            "once it is reachable"
        )
    Alerts(get_settings(pipeline).notify.webhook_url).send(
        "rolled_back", text, {"rollback": rolled, "activation": activation}
    )
    return {"outcome": "rolled_back", "message": text}
