"""Follow what a landing did: find the ingest run its asset event started, watch it to the end, and read
the landing's outcome (a raw partition or a quarantine record) from the asset events.

Each function takes the pipeline's names (`chain`); left out, the project's only pipeline (with
several, the caller must name one)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from landfall.core.catalog import SELECT_BEST_TASK, Chain, chain_of
from landfall.core.settings import get_settings
from landfall.ops.airflow_api import AirflowApi
from landfall.pipeline.landing import landings_in
from landfall.pipeline.publish import published_head, quarantine_records

TERMINAL = {"success", "failed"}


def names(chain: Chain | None) -> Chain:
    """`chain`, or the names of the project's only pipeline."""
    return chain or chain_of(get_settings().pipeline)


@dataclass
class FollowResult:
    dag_id: str
    run_id: str
    state: str
    queued_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    tasks: dict[str, str] = field(default_factory=dict)
    outcome: str = ""  # for an ingest run followed for one key: ingested, quarantined, or the run's state


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def raw_events_for(api: AirflowApi, key: str, chain: Chain | None = None) -> list[dict[str, Any]]:
    """The raw_daily events that published a partition from `key`."""
    return [
        event
        for event in api.events_of(names(chain).raw)
        if (published_head(event) or {}).get("source_key") == key
    ]


def quarantine_events_for(api: AirflowApi, key: str, chain: Chain | None = None) -> list[dict[str, Any]]:
    """The quarantine events that report `key` (quarantined or refused)."""
    return [
        event
        for event in api.events_of(names(chain).quarantine)
        if any(record.get("source_key") == key for record in quarantine_records(event.get("extra")))
    ]


def landing_events_for(api: AirflowApi, key: str, chain: Chain | None = None) -> list[dict[str, Any]]:
    events = api.events_of(names(chain).landing)
    return [e for e in events if key in [o["key"] for o in landings_in(e.get("extra"))]]


def outcome_of(api: AirflowApi, key: str, etag: str | None = None, chain: Chain | None = None) -> str | None:
    """ingested, quarantined or None (not decided yet), from the outcome events naming `key`."""
    for event in raw_events_for(api, key, chain):
        if etag is None or published_head(event)["source_etag"] == etag:
            return "ingested"
    for event in quarantine_events_for(api, key, chain):
        if etag is None or any(r.get("source_etag") == etag for r in quarantine_records(event["extra"])):
            return "quarantined"
    return None


def find_run_for_key(
    api: AirflowApi,
    key: str,
    etag: str | None,
    dag_id: str | None = None,
    checked: set[str] | None = None,
) -> dict[str, Any] | None:
    """The most recent run of `dag_id` (the only pipeline's ingest DAG when None) whose triggering asset
    events include the landed `key`."""
    dag_id = dag_id or names(None).ingest_dag
    checked = checked if checked is not None else set()
    for run in api.dag_runs(dag_id, limit=50):
        if run["dag_run_id"] in checked:
            continue
        events = api.get_tolerant(f"dags/{dag_id}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")
        if events is None:
            continue
        for event in events["asset_events"]:
            for landed in landings_in(event.get("extra")):
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
    chain: Chain | None = None,
) -> FollowResult:
    """Wait for the ingest run of `key`, printing each task's state change; raise TimeoutError if none."""
    deadline = time.monotonic() + timeout_s
    checked: set[str] = set()
    ingest = names(chain).ingest_dag
    echo(f"waiting for the S3 watcher to start a {ingest} run for {key} ...")
    run = None
    while run is None:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no {ingest} run picked up {key} within {timeout_s:.0f}s: check "
                "`landfall logs triggerer` and that the DAG is unpaused in the Airflow UI"
            )
        run = find_run_for_key(api, key, etag, ingest, checked=checked)
        if run is None:
            time.sleep(0.5)
    result = watch_run(api, ingest, run["dag_run_id"], deadline, echo)
    result.outcome = outcome_of(api, key, etag, chain) or result.state
    return result


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
                echo(f"    {name:<45} {state:<10} {ti.get('rendered_map_index') or ''}")
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


def follow_chain(
    api: AirflowApi,
    partition: str,
    after: datetime,
    timeout_s: float = 900,
    echo: Callable[[str], None] = print,
    chain: Chain | None = None,
) -> list[FollowResult]:
    """Follow every DAG downstream of ingest for one partition; stop at the first one that fails, or at a
    train run that skipped its search (`training.retrain: on_drift` on a day that did not move, or a day
    coalesced into a later one's window): no candidate comes of it, so no evaluation follows."""
    results = []
    deadline = time.monotonic() + timeout_s
    train_dag = names(chain).train_dag
    for dag_id in names(chain).after_ingest:
        result = follow_partition(api, dag_id, partition, after, max(deadline - time.monotonic(), 1), echo)
        results.append(result)
        if result.state != "success":
            break
        if dag_id == train_dag and result.tasks.get(SELECT_BEST_TASK) == "skipped":
            echo(f"  {dag_id} [{partition}] skipped its search: no candidate, nothing to evaluate")
            break
    return results
