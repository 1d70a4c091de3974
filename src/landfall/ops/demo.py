"""`landfall demo`: bring the stack up, land one day, follow it through every DAG to the champion."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from landfall.ops.follow import FollowResult, follow_chain, follow_landing
from landfall.ops.landings import land_day
from landfall.ops.stack.launcher import Stack
from landfall.pipeline.datagen import sample_batch, to_parquet


class DemoFailed(RuntimeError):
    pass


@dataclass
class DemoResult:
    day: str
    promoted: bool
    reason: str
    put_to_queued_s: float
    put_to_deploy_s: float


def _failure(stack: Stack, result: FollowResult, what: str) -> DemoFailed:
    failed = [name for name, state in result.tasks.items() if state in ("failed", "upstream_failed")]
    logs = stack.state.airflow_home / "logs" / f"dag_id={result.dag_id}" / f"run_id={result.run_id}"
    return DemoFailed(f"{what}: {result.dag_id} {result.state}, tasks {failed or '-'}; logs: {logs}")


def run_demo(stack: Stack, day: date, timeout_s: float, echo: Callable[[str], None]) -> DemoResult:
    echo("1/3 starting the stack ...")
    stack.up()
    storage = stack.settings.storage
    # A fresh seed each time: new rows, so the day is a new landing with a model of its own.
    body = to_parquet(
        sample_batch(stack.settings.landing, 5000, seed=int(time.time()), task=stack.settings.training.task)
    )
    echo(
        f"2/3 landing s3://{storage.datasets_bucket}/{storage.landing_prefix}/{day}/... "
        f"({len(body)} bytes) ..."
    )
    landed = land_day(stack.s3_client(), storage, day, body)
    echo("3/3 following the pipeline (the S3 watcher in the triggerer starts it) ...")
    api = stack.api()
    started = time.monotonic()
    try:
        names = stack.settings.names
        ingest = follow_landing(api, landed.key, landed.etag, timeout_s=timeout_s, echo=echo, chain=names)
        if ingest.state != "success" or ingest.outcome != "ingested":
            raise _failure(stack, ingest, f"the landing was {ingest.outcome}")
        chain = follow_chain(
            api, day.isoformat(), ingest.queued_at, timeout_s=timeout_s, echo=echo, chain=names
        )
    except TimeoutError as error:
        raise DemoFailed(str(error)) from None
    if chain[-1].state != "success":
        raise _failure(stack, chain[-1], "the pipeline stopped")
    evaluation = next(
        (
            e["extra"]
            for e in api.events_of(stack.settings.names.evaluation)
            if e.get("partition_key") == day.isoformat()
        ),
        {},
    )
    return DemoResult(
        day.isoformat(),
        chain[-1].tasks.get("promote") == "success",
        evaluation.get("reason")
        or (
            "not trained: the day's train run skipped its search (training.retrain: on_drift and no drift, "
            "or a later day's window holds it); `landfall status --pipeline` says why"
            if chain[-1].dag_id == names.train_dag
            else "?"
        ),
        ingest.queued_at.timestamp() - landed.put_at,
        time.monotonic() - started,
    )


def champion_line(stack: Stack) -> str | None:
    """Who is champion now, for the demo's last lines."""
    os.environ.update(stack.environment())
    from landfall.pipeline import registry

    name = stack.settings.mlflow.model_name
    champion = registry.champion(name, registry.client())
    if champion is None:
        return None
    return (
        f"Champion: {name} version {champion.version} (run {champion.run_id}) "
        f"-> {stack.mlflow_url}/#/models/{name}"
    )


def serving_line(stack: Stack) -> str:
    """One real prediction from the scoring service: what deploy made of the day, answering requests."""
    from landfall.pipeline.canary import as_rows
    from landfall.serving.client import ServingClient, ServingError

    client = ServingClient(
        stack.ctx.serving_url, stack.state.secrets().serving_token, pipeline=stack.settings.pipeline
    )
    landing, pipeline = stack.settings.landing, stack.settings.pipeline
    rows = as_rows(
        sample_batch(landing, 1, seed=7, task=stack.settings.training.task)[landing.feature_columns]
    )
    try:
        answer = client.predict(rows)
    except ServingError as error:
        return f"Serving: {error}"
    prediction = answer["predictions"][0]
    probability = (answer.get("probabilities") or [{}])[0].get(str(prediction))
    shown = f"{prediction}" + ("" if probability is None else f", p={probability:.2f}")
    route = f"{stack.ctx.serving_url}/v1/models/{pipeline}/predict"
    return f"Serving: version {answer['version']} at {route} (one row -> {shown})"
