"""What the tests do to a running stack, and how they read what happened: the one module tests import
their helpers from. Everything goes through the real components: landings are PUTs into SeaweedFS,
outcomes are read from Airflow's REST API, S3 and MLflow, and trial models are fitted and logged to a
real MLflow store the way the trainer does it."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from landfall.core.catalog import chain_of
from landfall.ops.follow import FollowResult, follow_landing
from landfall.ops.landings import Landed, put_landing
from landfall.ops.stack.components import executable
from landfall.ops.stack.environment import process_environment

CHURN = chain_of("churn")
"""The names of the test stack's pipeline (the repository config's one): its DAGs, assets and pool."""

TIMEOUT_S = 600
POLL_TIMEOUT_S = 60


# ---- the machine's own services (the scale-out profile and queue mode use them) --------------------

POSTGRES = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)
RABBITMQ = ("127.0.0.1", 5672)
# How this machine's services are started when they are down (see the machine notes); CI runs on a
# machine like it.
START_COMMANDS = {
    POSTGRES: "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    RABBITMQ: "rabbitmq-server -detached",
    REDIS: "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no "
    "--dir /var/lib/redis --logfile /var/log/redis/ci.log",
}


def _answers(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=2):
            return True
    except OSError:
        return False


def ensure_service(address: tuple[str, int]) -> None:
    """Start the machine's PostgreSQL, Redis or RabbitMQ when nothing answers at its address."""
    import pytest

    if _answers(address):
        return
    subprocess.run(START_COMMANDS[address], shell=True, check=False, timeout=60, capture_output=True)
    deadline = time.monotonic() + 30
    while not _answers(address):
        if time.monotonic() > deadline:
            host, port = address
            pytest.fail(f"nothing answers on {host}:{port} and `{START_COMMANDS[address]}` did not start it")
        time.sleep(0.5)


def logs_in_to_rabbitmq(url: str) -> bool:
    """True when RabbitMQ lets this account open this vhost (False when it refuses either)."""
    import asyncio

    from landfall.ops.stack import accounts

    try:
        asyncio.run(accounts._log_in(url))
        return True
    except Exception as error:
        assert "Connect call failed" not in str(error), f"RabbitMQ is down: {error}"
        return False


# ---- the landing watcher's stream, driven without a triggerer -------------------------------------


def run_with_deadline(coroutine: Any) -> Any:
    """Run a poll with a deadline: a producer that cannot reach S3 retries forever by design."""
    import asyncio

    return asyncio.run(asyncio.wait_for(coroutine, POLL_TIMEOUT_S))


async def events_of_one_poll(producer: Any, outcome: Any = None) -> list[tuple[dict, Any]]:
    """Run the producer's stream until its end-of-poll tick and return the (event, report) pairs; with
    an `outcome`, advance them as the triggerer does once Airflow answered, while the stream is open.
    `outcome` may be a function of the report (a different answer per pipeline)."""
    from airflow.triggers.shared_stream import AdvanceItem

    from landfall.airflow.triggers.s3_landing import TICK

    items = []
    stream = producer.open_stream()
    try:
        async for raw, report in stream:
            if raw == TICK:
                break
            items.append((raw, report))
        if outcome is not None and items:
            answer = outcome if callable(outcome) else lambda _: outcome
            await producer.advance([AdvanceItem(report, answer(report)) for _, report in items])
    finally:
        await stream.aclose()
    return items


def reported_landings(items: list[tuple[dict, Any]]) -> list[Any]:
    """The landings the events report, after checking each event's signature as ingest does."""
    from landfall.pipeline.landing import signing_key, verified_batch

    return [landing for event, _ in items for landing in verified_batch(signing_key(), {"payload": event})[1]]


def put_in_area(s3: Any, area: dict[str, Any], day: str, body: bytes = b"parquet-bytes") -> tuple[str, str]:
    """A day's file under a test's private landing prefix; (key, ETag)."""
    key = f"{area['prefix']}/{day}/features.parquet"
    return key, s3.put_object(Bucket=area["bucket"], Key=key, Body=body)["ETag"].strip('"')


def logged_trial(settings: Any, experiment: str, seed: int = 1, tags: dict | None = None) -> str:
    """Fit a small trial model and log it the way the trainer does (to the current MLflow tracking URI);
    return its run id. `tags` replaces the pipeline's own run tags (a foreign run)."""
    import mlflow

    from landfall.pipeline.datagen import make_batch
    from landfall.pipeline.features import split
    from landfall.pipeline.training.estimators import mlp
    from landfall.pipeline.training.models import PIPELINE_TAGS, log_model

    parts = split(make_batch(600, seed=seed), settings.landing, 0.2, 0.2)
    label = settings.landing.label
    params = {"learning_rate": 0.01, "batch_size": 64, "optimizer": "adam", "hidden_units": 8}
    model = mlp("binary", params, max_epochs=5)
    model.fit(parts["train"].drop(columns=[label]), parts["train"][label])
    mlflow.set_experiment(experiment)
    run_tags = {**PIPELINE_TAGS, "landfall.stage": "trial"} if tags is None else tags
    with mlflow.start_run(tags=run_tags) as run:
        log_model(model, "mlp")
    return run.info.run_id


def positive(answer: dict[str, Any]) -> list[float]:
    """The positive class's probability per row of a binary answer (the service maps class -> probability)."""
    return [row["1"] for row in answer["probabilities"]]


def unique_day(first_year: int) -> str:
    """A random day from `first_year` on: tests in one stack never share a partition."""
    return (date(first_year, 1, 1) + timedelta(days=uuid.uuid4().int % 30000)).isoformat()


class RecordedOutlet:
    """An `outlet_events[asset]` of a task, as the drift and freshness tasks use it: what they set on it."""

    def __init__(self) -> None:
        self.partitions: list[str] = []
        self.extra: dict | None = None

    def add_partitions(self, partitions: list[str]) -> None:
        self.partitions.extend(partitions)


def day_key(day: str) -> str:
    return f"daily/{day}/features.parquet"


def land(stack: Any, key: str, body: bytes) -> Landed:
    return put_landing(stack.s3_client(), stack.settings.storage.datasets_bucket, key, body)


def land_and_follow(
    stack: Any, api: Any, day: str, body: bytes, timeout_s: float = TIMEOUT_S
) -> tuple[Landed, FollowResult]:
    landed = land(stack, day_key(day), body)
    return landed, follow_landing(api, landed.key, landed.etag, timeout_s=timeout_s)


def partition_events(api: Any, asset: str, day: str) -> list[dict[str, Any]]:
    return [e for e in api.events_of(asset) if e.get("partition_key") == day]


def model_versions(name: str) -> list[Any]:
    from mlflow import MlflowClient

    return MlflowClient().search_model_versions(f"name = '{name}'")


def xcom_value(stack: Any, api: Any, dag_id: str, run_id: str, task_id: str) -> Any:
    """Follow the XCom row's S3 path to the value, as the object-storage backend does."""
    return api.xcom_value(stack.s3_client(), dag_id, run_id, task_id)


def wait_for(check: Callable[[], Any], timeout_s: float, what: str, every_s: float = 1.0) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f}s waiting for {what}"
        time.sleep(every_s)
    return result


def finished_run(
    api: Any, dag_id: str, match: Callable[[dict[str, Any]], bool], timeout_s: float = TIMEOUT_S
) -> dict:
    """The newest run of `dag_id` that `match` accepts, once it has finished."""

    def done() -> dict | None:
        runs = [r for r in api.dag_runs(dag_id, limit=100) if match(r)]
        return runs[0] if runs and runs[0]["state"] in ("success", "failed") else None

    return wait_for(done, timeout_s, f"a finished {dag_id} run")


def task_states(api: Any, dag_id: str, run_id: str) -> dict[str, str]:
    return {ti["task_id"]: ti["state"] for ti in api.task_instances(dag_id, run_id)}


def airflow_cli(stack: Any, *args: str) -> subprocess.CompletedProcess:
    """The plain airflow CLI, in the environment `eval "$(landfall env)"` gives a shell."""
    env = process_environment(stack.ctx, stack.state.secrets())
    result = subprocess.run(
        [executable("airflow"), *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    with open(stack.state.logs / "airflow-cli.log", "a") as log:  # kept with the stack's logs
        log.write(f"$ airflow {' '.join(args)}\n{result.stdout}\n{result.stderr}\n")
    return result
