"""Backfill with the plain `airflow` CLI: history already in S3 is re-processed day by day, and the chain
follows through the Assets, without ever registering a model version twice or promoting twice.

The days' files are put in S3 as history while the triggerer is stopped, with their folders' watcher
manifests written before it starts again, so the watcher treats them as reported long ago and only the
backfill processes them.
"""

from __future__ import annotations

import time
import uuid
from datetime import date, datetime, timedelta

import pytest

from journeys import CHURN, airflow_cli, model_versions
from landfall.core import catalog
from landfall.ops.follow import follow_partition, landing_events_for, watch_run
from landfall.pipeline import registry
from landfall.pipeline.datagen import make_batch, to_parquet
from landfall.pipeline.keys import folder_manifest, landing_key
from landfall.pipeline.landing import Landing
from landfall.pipeline.landing_ledger import FolderLedger

pytestmark = pytest.mark.stack
TIMEOUT_S = 900
INGEST = CHURN.ingest_dag


@pytest.fixture(scope="module")
def history(launcher):
    """Three past days in the landing folder, already marked as reported by the watcher."""
    stack = launcher
    stack.up()
    storage = stack.settings.storage
    s3 = stack.s3_client()
    first = date(1990, 1, 1) + timedelta(days=uuid.uuid4().int % 9000)
    days = [(first + timedelta(days=offset)).isoformat() for offset in range(3)]
    stack.stop("triggerer")  # history lands unseen ...
    try:
        for index, day in enumerate(days):
            # Noisy labels keep these days under the deploy floor, whatever the champion is: the tests
            # below can then say exactly what the gate does.
            body = to_parquet(make_batch(2000, seed=700 + index, label_noise=0.15))
            key = landing_key(storage, date.fromisoformat(day))
            s3.put_object(Bucket=storage.datasets_bucket, Key=key, Body=body)
            landing = Landing.from_listing(
                storage.datasets_bucket,
                storage.landing_prefix,
                {"Key": key, **s3.head_object(Bucket=storage.datasets_bucket, Key=key)},
            )
            # ... and is in the watcher's ledger (its folder's manifest), as if reported long ago.
            ledger = FolderLedger(day)
            ledger.record(landing)
            s3.put_object(
                Bucket=storage.datasets_bucket,
                Key=folder_manifest(storage.ledger_prefix, day),
                Body=ledger.to_json(),
            )
    finally:
        stack.up()
    return days


def _airflow(stack, *args: str):
    """The plain airflow CLI, as the README tells users to run it on the embedded SQLite stack.

    A write that has to upgrade a read lock while the scheduler writes fails at once with "database is
    locked" (SQLite's deadlock rule: the 30 s busy timeout does not apply): run it again. "Another
    backfill is running" is either the previous backfill, whose runs are done but which the scheduler
    marks complete a loop later (wait for it), or a half-made one Airflow's best-effort clean-up left
    behind (cancel it), then run it again."""
    for _ in range(6):
        result = airflow_cli(stack, *args)
        if "database is locked" in result.stderr:
            time.sleep(3)
        elif "Another backfill is running" in result.stderr:
            if not _unfinished_backfills_finish(stack.api(), within_s=30):
                _cancel_unfinished_backfills(stack.api())
                time.sleep(2)
        else:
            return result
    return result


def _unfinished_backfills_finish(api, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if all(b.get("completed_at") for b in api.get("backfills", dag_id=INGEST)["backfills"]):
            return True
        time.sleep(1)
    return False


def _cancel_unfinished_backfills(api) -> None:
    for backfill in api.get("backfills", dag_id=INGEST)["backfills"]:
        if backfill.get("completed_at") is None:
            response = api.session.put(f"{api.base_url}/api/v2/backfills/{backfill['id']}/cancel", timeout=30)
            response.raise_for_status()


def _backfill_runs(api, days: list[str]) -> list[dict]:
    return [
        run
        for run in api.dag_runs(INGEST, limit=100)
        if run["run_type"] == "backfill" and (run.get("logical_date") or "")[:10] in days
    ]


def _wait_for_backfill(api, days: list[str], count: int) -> list[dict]:
    deadline = time.monotonic() + TIMEOUT_S
    while len(runs := _backfill_runs(api, days)) < count:
        assert time.monotonic() < deadline, f"only {len(runs)} of {count} backfill runs were created"
        time.sleep(1)
    results = [watch_run(api, INGEST, run["dag_run_id"], deadline, print) for run in runs]
    for (
        result
    ) in results:  # a backfill run carries one day's landing: its publish task says what became of it
        published = any(
            t.startswith(catalog.PUBLISH_TASK) and s == "success" for t, s in result.tasks.items()
        )
        result.outcome = "ingested" if published else result.state
    return results


def test_dry_run_lists_one_run_per_day_and_creates_nothing(stack, airflow_api, history):
    result = _airflow(
        stack, "backfill", "create", "--dag-id", INGEST, "--from-date", history[0], "--to-date", history[-1],
        "--dry-run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    for day in history:
        assert f"{day} 00:00:00" in result.stdout, result.stdout
    assert _backfill_runs(airflow_api, history) == []


def test_backfill_reprocesses_each_day_and_the_chain_follows_per_partition(stack, airflow_api, history):
    name = stack.settings.mlflow.model_name
    versions_before = {v.version for v in model_versions(name)}
    started = datetime.now().astimezone()
    wall = time.monotonic()
    result = _airflow(
        stack, "backfill", "create", "--dag-id", INGEST, "--from-date", history[0], "--to-date", history[-1],
        "--max-active-runs", "2", "--reprocess-behavior", "none",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]

    ingests = _wait_for_backfill(airflow_api, history, 3)
    assert [r.outcome for r in ingests] == ["ingested"] * 3
    for day in history:
        for dag_id in CHURN.after_ingest:
            run = follow_partition(airflow_api, dag_id, day, started, TIMEOUT_S)
            assert run.state == "success", (dag_id, day, run.tasks)
    print(f"\nbackfill of {len(history)} days, through deploy: {time.monotonic() - wall:.1f}s")

    # Exactly one raw event per day came from the backfill; each candidate was registered at most once.
    for day in history:
        raw = [e for e in airflow_api.events_of(CHURN.raw) if e.get("partition_key") == day]
        assert len(raw) == 1, day
        key = f"{stack.settings.storage.landing_prefix}/{day}/{stack.settings.storage.landing_filename}"
        assert landing_events_for(airflow_api, key) == [], "the watcher reported history itself"
    versions = model_versions(name)
    new = [v for v in versions if v.version not in versions_before]
    assert len({v.run_id for v in versions}) == len(versions), "a candidate was registered twice"
    assert new == [], "days under the floor must not be promoted"


def test_backfilling_the_same_day_again_promotes_nothing_twice(stack, airflow_api, history):
    name = stack.settings.mlflow.model_name
    versions_before = sorted(v.version for v in model_versions(name))
    champion_before = registry.champion(name, registry.client())
    started = datetime.now().astimezone()
    day = history[0]
    result = _airflow(
        stack, "backfill", "create", "--dag-id", INGEST, "--from-date", day, "--to-date", day,
        "--reprocess-behavior", "completed",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    # `completed` clears the day's existing backfill run and runs it again (same run id).
    [ingest] = _wait_for_backfill(airflow_api, [day], 1)
    assert ingest.outcome == "ingested" and ingest.started_at >= started
    deploy = follow_partition(airflow_api, CHURN.deploy_dag, day, started, TIMEOUT_S)
    assert deploy.state == "success"
    # The same data trains the same model: not better than itself, so no promotion and no new version.
    assert deploy.tasks["promote"] == "skipped"
    assert sorted(v.version for v in model_versions(name)) == versions_before
    champion_after = registry.champion(name, registry.client())
    assert (champion_after and champion_after.version) == (champion_before and champion_before.version)
