"""What the end-to-end tests do to a running stack, and how they read what happened: the one module
every e2e test imports its helpers from. Everything goes through the real components: landings are
PUTs into SeaweedFS, and outcomes are read from Airflow's REST API, S3 and MLflow."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from landfall.ops.follow import FollowResult, follow_landing
from landfall.ops.landings import Landed, put_landing
from landfall.ops.stack.components import executable
from landfall.ops.stack.environment import process_environment

TIMEOUT_S = 600


def unique_day(first_year: int) -> str:
    """A random day from `first_year` on: tests in one stack never share a partition."""
    return (date(first_year, 1, 1) + timedelta(days=uuid.uuid4().int % 30000)).isoformat()


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
    stored = api.xcom_stored(dag_id, run_id, task_id)
    stored = json.loads(stored) if isinstance(stored, str) and not stored.startswith("s3://") else stored
    assert isinstance(stored, str) and stored.startswith("s3://"), f"XCom kept in the DB: {stored!r}"
    bucket, _, key = stored.removeprefix("s3://").split("@", 1)[-1].partition("/")
    return json.loads(stack.s3_client().get_object(Bucket=bucket, Key=key)["Body"].read())


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
