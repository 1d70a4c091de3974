"""The bodies of the deploy DAG's tasks: the gate from config, the compare-and-set promotion, the report."""

from __future__ import annotations

import logging
from typing import Any

from landfall.core.settings import get_settings

log = logging.getLogger(__name__)


def gate(evaluation: dict[str, Any]) -> bool:
    """Re-apply the gate from config to the evaluation's scores: nothing in run conf or params can pass it."""
    from landfall.pipeline.evaluation import decide

    baseline = evaluation["baseline_score"] if evaluation.get("champion_version") else None
    bound = evaluation.get("lower_bound")
    decision = decide(float(evaluation["new_score"]), baseline, bound, get_settings().deploy)
    log.info("Gate: %s", decision.reason)
    return decision.should_deploy


def promote(evaluation: dict[str, Any], airflow_run_id: str) -> dict[str, Any]:
    """Register and move the alias, only if the champion is still the one the evaluation beat."""
    from airflow.exceptions import AirflowSkipException

    from landfall.pipeline import registry
    from landfall.pipeline.training.models import run_model_uri

    name = get_settings().mlflow.model_name
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
    }


def report(evaluation: dict[str, Any], promoted: dict[str, Any] | None) -> dict[str, Any]:
    from landfall.pipeline import registry
    from landfall.pipeline.alerts import Alerts

    settings = get_settings()
    if promoted:
        outcome = "deployed"
        text = (
            f"Deployed {promoted['model_name']} v{promoted['version']} "
            f"({evaluation['metric']} {evaluation['new_score']:.4f}): {evaluation['reason']}"
        )
    else:
        outcome, reason = "skipped", evaluation["reason"]
        if evaluation.get("should_deploy"):
            current = registry.champion_version(settings.mlflow.model_name, registry.client())
            if current != evaluation.get("champion_version"):
                reason = (
                    f"the champion moved to v{current} after this candidate was compared with "
                    f"v{evaluation.get('champion_version')}: a stale evaluation is not promoted"
                )
            else:
                reason = "the candidate already holds the champion alias"
        text = f"Not deployed (run {evaluation['run_id']}): {reason}"
    Alerts(settings.notify.webhook_url).send(outcome, text, {"evaluation": evaluation, "promotion": promoted})
    return {"outcome": outcome, "message": text}
