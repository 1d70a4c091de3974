"""`landfall rollback`: trigger the pipeline's rollback DAG and follow it, so that a rollback from a shell
takes the same pool (never interleaving with a promotion) and leaves the same record as one from the UI."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from landfall.ops.airflow_api import AirflowApi


class RollbackFailed(RuntimeError):
    pass


def request_rollback(
    rollback_dag: str,
    api: AirflowApi,
    s3: Any,
    to_version: str | None,
    reason: str,
    requested_by: str,
    timeout_s: float,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """Run the rollback DAG; return its rollback and activation results, or raise RollbackFailed with the
    task's own error (e.g. "version 7 records no previous champion: name one with --to VERSION")."""
    conf = {"to_version": to_version, "reason": reason, "requested_by": requested_by}
    run_id = api.trigger(rollback_dag, conf)["dag_run_id"]
    echo(f"Triggered {rollback_dag} run {run_id}; waiting for it ...")
    deadline = time.monotonic() + timeout_s
    while (state := api.dag_run(rollback_dag, run_id)["state"]) not in ("success", "failed"):
        if time.monotonic() > deadline:
            raise RollbackFailed(f"{rollback_dag} run {run_id} is still {state} after {timeout_s:.0f}s")
        time.sleep(1)
    tasks = {ti["task_id"]: ti for ti in api.task_instances(rollback_dag, run_id)}
    rollback = tasks.get("rollback", {})
    if rollback.get("state") != "success":
        raise RollbackFailed(
            _error_of(api, rollback_dag, run_id, rollback) or f"{rollback_dag} run {run_id} failed"
        )
    result = {"run_id": run_id, "rollback": api.xcom_value(s3, rollback_dag, run_id, "rollback")}
    activate = tasks.get("activate", {})
    result["activation"] = (
        api.xcom_value(s3, rollback_dag, run_id, "activate") if activate.get("state") == "success" else None
    )
    return result


def _error_of(api: AirflowApi, rollback_dag: str, run_id: str, task: dict[str, Any]) -> str | None:
    """The line of the task's log that says why it failed."""
    if not task.get("try_number"):
        return None
    text = api.task_log(rollback_dag, run_id, "rollback", int(task["try_number"]))
    found = re.search(r"rollback refused: [^{\n]*", text)
    return found.group(0).strip() if found else None
