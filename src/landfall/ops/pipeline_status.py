"""`landfall status --pipeline NAME`: where one pipeline stands on a running stack. Its chain's newest run
per DAG (state, partition, when it ended), the version holding its `champion` alias in MLflow and the
version its scoring route serves: the three places a user otherwise looks up in three UIs."""

from __future__ import annotations

import json
from typing import Any

import requests

from landfall.ops.airflow_api import AirflowApi
from landfall.ops.stack.launcher import Stack


def pipeline_status(stack: Stack, api: AirflowApi) -> dict[str, Any]:
    settings, names = stack.settings, stack.settings.names
    chain = {}
    for dag_id in (names.ingest_dag, *names.after_ingest):
        runs = api.dag_runs(dag_id, limit=1)
        chain[dag_id] = (
            {
                "state": runs[0]["state"],
                "partition": runs[0].get("partition_key")
                or (runs[0].get("data_interval_start") or "")[:10]
                or None,
                "run_id": runs[0]["dag_run_id"],
                "ended": runs[0].get("end_date"),
            }
            if runs
            else None
        )
    train = chain.get(names.train_dag)
    if train is not None and settings.training.retrain == "on_drift":
        train["retrain"] = retrain_decision(stack, api, names.train_dag, train["run_id"])
    return {
        "pipeline": settings.pipeline,
        "model": settings.mlflow.model_name,
        "champion": _champion(stack),
        "served": _served(stack),
        "chain": chain,
    }


def retrain_decision(stack: Stack, api: AirflowApi, dag_id: str, run_id: str) -> dict[str, Any] | None:
    """What an `on_drift` train run decided (`{"train", "reason", "verdict", ...}`); None before it did."""
    from landfall.airflow.tasks.retrain import DECISION_KEY
    from landfall.core.catalog import RETRAIN_TASK

    try:
        stored = api.xcom_stored(dag_id, run_id, RETRAIN_TASK, DECISION_KEY)
    except requests.HTTPError as error:
        if error.response is not None and error.response.status_code == 404:
            return None  # the run has not decided yet (or skipped before: a coalesced day)
        raise
    if isinstance(stored, str) and stored.startswith("s3://"):  # the object-storage backend's path
        return api.xcom_value(stack.s3_client(), dag_id, run_id, RETRAIN_TASK, DECISION_KEY)
    return json.loads(stored) if isinstance(stored, str) else stored


def _champion(stack: Stack) -> str | None:
    import os

    os.environ.update(stack.environment())
    from landfall.pipeline import registry

    try:
        champion = registry.champion(stack.settings.mlflow.model_name, registry.client())
    except Exception as error:  # MLflow down: say so in the status rather than fail it
        return f"unknown ({type(error).__name__})"
    return None if champion is None else str(champion.version)


def _served(stack: Stack) -> str | None:
    from landfall.serving.client import ServingClient, ServingError

    client = ServingClient(
        stack.ctx.serving_url, stack.state.secrets().serving_token, pipeline=stack.settings.pipeline
    )
    try:
        served = client.version()
    except ServingError as error:
        return f"unknown ({error})"
    return None if served is None else str(served["version"])


def status_lines(status: dict[str, Any]) -> list[str]:
    lines = [
        f"pipeline {status['pipeline']}: champion {status['champion'] or 'none yet'} of {status['model']}, "
        f"served {status['served'] or 'none yet'}"
    ]
    for dag_id, run in status["chain"].items():
        if run is None:
            lines.append(f"  {dag_id:<32} no run yet")
        else:
            lines.append(f"  {dag_id:<32} {run['state']:<8} {run['partition'] or '-':<13} {run['run_id']}")
            if decision := run.get("retrain"):
                searched = "searched" if decision["train"] else "search skipped"
                lines.append(f"  {'':<32} {searched}: {decision['reason']}")
    return lines
