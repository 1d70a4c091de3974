"""Follow what a landing did: find the ingest run that its asset event started and watch it to the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

from landfall.airflow_api import AirflowApi
from landfall.triggers import landed_objects_in

INGEST_DAG = "landfall_ingest"
TERMINAL = {"success", "failed"}


@dataclass
class FollowResult:
    dag_id: str
    run_id: str
    state: str
    queued_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    tasks: dict[str, str] = field(default_factory=dict)

    def _succeeded(self, task_id: str) -> bool:
        return any(
            name.split("[")[0].endswith(task_id) and state == "success" for name, state in self.tasks.items()
        )

    @property
    def outcome(self) -> str:
        """What happened to the landed object: ingested, quarantined, or the run's state otherwise."""
        if self._succeeded("publish_raw_partition"):
            return "ingested"
        if self._succeeded("report_quarantine"):
            return "quarantined"
        return self.state


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def find_run_for_key(
    api: AirflowApi, key: str, etag: str | None, dag_id: str = INGEST_DAG, checked: set[str] | None = None
) -> dict[str, Any] | None:
    """The most recent run of `dag_id` whose triggering asset events include the landed `key`."""
    checked = checked if checked is not None else set()
    for run in api.dag_runs(dag_id, limit=50):
        if run["dag_run_id"] in checked:
            continue
        try:
            events = api.get(f"dags/{dag_id}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")["asset_events"]
        except requests.HTTPError as error:
            # Airflow 3.3 answers 500 while an event's created runs include one not started yet
            # (AssetEventResponse requires start_date); it clears as soon as that run starts.
            if error.response is not None and error.response.status_code == 500:
                continue
            raise
        for event in events:
            for landed in landed_objects_in(event.get("extra")):
                if landed["key"] == key and (etag is None or landed.get("etag") == etag):
                    return run
        if run["state"] in TERMINAL:
            checked.add(run["dag_run_id"])  # a finished run's events do not change
    return None


def follow_landing(
    api: AirflowApi,
    key: str,
    etag: str | None = None,
    timeout_s: float = 300,
    echo: Callable[[str], None] = print,
) -> FollowResult:
    """Wait for the ingest run of `key`, printing each task's state change; raise TimeoutError if none."""
    deadline = time.monotonic() + timeout_s
    checked: set[str] = set()
    echo(f"waiting for the S3 watcher to start a {INGEST_DAG} run for {key} ...")
    run = None
    while run is None:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no {INGEST_DAG} run picked up {key} within {timeout_s:.0f}s: check "
                "`landfall logs triggerer` and that the DAG is unpaused in the Airflow UI"
            )
        run = find_run_for_key(api, key, etag, checked=checked)
        if run is None:
            time.sleep(0.5)
    return watch_run(api, INGEST_DAG, run["dag_run_id"], deadline, echo)


def watch_run(
    api: AirflowApi, dag_id: str, run_id: str, deadline: float, echo: Callable[[str], None] = print
) -> FollowResult:
    """Print each task's state changes until the run ends (`deadline` is a time.monotonic() value)."""
    echo(f"  {dag_id} run {run_id}")
    seen: dict[str, str] = {}
    while True:
        run = api.get(f"dags/{dag_id}/dagRuns/{run_id}")
        for ti in api.task_instances(dag_id, run_id):
            name = ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else "")
            state = ti.get("state") or "none"
            if seen.get(name) != state:
                seen[name] = state
                label = ti.get("rendered_map_index") or ""
                echo(f"    {name:<45} {state:<10} {label}")
        if run["state"] in TERMINAL:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{dag_id} run {run_id} still {run['state']}: see `landfall logs scheduler`")
        time.sleep(1)
    return FollowResult(
        dag_id,
        run_id,
        run["state"],
        _parse(run.get("queued_at")),
        _parse(run.get("start_date")),
        _parse(run.get("end_date")),
        seen,
    )


def follow_partition(
    api: AirflowApi,
    dag_id: str,
    partition: str,
    after: datetime,
    timeout_s: float = 600,
    echo: Callable[[str], None] = print,
) -> FollowResult:
    """Wait for the run of `dag_id` for `partition` queued after `after`, and watch it to the end."""
    deadline = time.monotonic() + timeout_s
    echo(f"waiting for {dag_id} [{partition}] ...")
    while True:
        for run in api.dag_runs(dag_id, limit=50):
            queued = _parse(run.get("queued_at"))
            if run.get("partition_key") == partition and queued and queued >= after:
                return watch_run(api, dag_id, run["dag_run_id"], deadline, echo)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {dag_id} run for partition {partition} within {timeout_s:.0f}s")
        time.sleep(1)


CHAIN = ("landfall_preprocess", "landfall_train", "landfall_evaluate", "landfall_deploy")


def follow_chain(
    api: AirflowApi,
    partition: str,
    after: datetime,
    timeout_s: float = 900,
    echo: Callable[[str], None] = print,
) -> list[FollowResult]:
    """Follow every DAG downstream of ingest for one partition; stop at the first one that fails."""
    results = []
    deadline = time.monotonic() + timeout_s
    for dag_id in CHAIN:
        result = follow_partition(api, dag_id, partition, after, max(deadline - time.monotonic(), 1), echo)
        results.append(result)
        if result.state != "success":
            break
    return results
