"""Backfill with the plain `airflow` CLI: history already in S3 is re-processed day by day, and the chain
follows through the Assets, without ever registering a model version twice or promoting twice.

The days' files are put in S3 as history: with their watcher ledger markers written first, so the
watcher treats them as reported long ago and only the backfill processes them.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
import uuid
from datetime import date, datetime, timedelta

import pytest

from landfall.ops.follow import CHAIN, follow_partition, watch_run
from landfall.pipeline import registry
from landfall.pipeline.datagen import make_batch, to_parquet
from landfall.pipeline.keys import landing_key, ledger_key

pytestmark = pytest.mark.stack
TIMEOUT_S = 900
INGEST = "landfall_ingest"


@pytest.fixture(scope="module")
def history(launcher):
    """Three past days in the landing folder, already marked as reported by the watcher."""
    stack = launcher
    stack.up()
    storage = stack.settings.storage
    s3 = stack.s3_client()
    first = date(1990, 1, 1) + timedelta(days=uuid.uuid4().int % 9000)
    days = [(first + timedelta(days=offset)).isoformat() for offset in range(3)]
    for index, day in enumerate(days):
        # Noisy labels keep these days under the deploy floor, whatever the champion is: the tests
        # below can then say exactly what the gate does.
        body = to_parquet(make_batch(2000, seed=700 + index, label_noise=0.15))
        key = landing_key(storage, date.fromisoformat(day))
        etag = hashlib.md5(body).hexdigest()  # S3's ETag of a single-part PUT
        s3.put_object(Bucket=storage.datasets_bucket, Key=ledger_key(storage, key, etag), Body=b"history")
        assert s3.put_object(Bucket=storage.datasets_bucket, Key=key, Body=body)["ETag"].strip('"') == etag
    return days


def _airflow(stack, *args: str) -> subprocess.CompletedProcess:
    """The plain airflow CLI, in the environment `eval "$(landfall env)"` gives a shell."""
    from landfall.ops.stack.launcher import _bin

    env = stack._process_env(stack.state.secrets())
    result = subprocess.run(
        [_bin("airflow"), *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    with open(stack.state.logs / "airflow-cli.log", "a") as log:  # kept with the stack's logs
        log.write(f"$ airflow {' '.join(args)}\n{result.stdout}\n{result.stderr}\n")
    return result


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
    return [watch_run(api, INGEST, run["dag_run_id"], deadline, print) for run in runs]


def _versions(name: str) -> list:
    from mlflow import MlflowClient

    return MlflowClient().search_model_versions(f"name = '{name}'")


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
    versions_before = {v.version for v in _versions(name)}
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
        for dag_id in CHAIN:
            run = follow_partition(airflow_api, dag_id, day, started, TIMEOUT_S)
            assert run.state == "success", (dag_id, day, run.tasks)
    print(f"\nbackfill of {len(history)} days, through deploy: {time.monotonic() - wall:.1f}s")

    # Exactly one raw event per day came from the backfill; each candidate was registered at most once.
    for day in history:
        raw = [e for e in airflow_api.events_of("raw_daily") if e.get("partition_key") == day]
        assert len(raw) == 1, day
    versions = _versions(name)
    new = [v for v in versions if v.version not in versions_before]
    assert len({v.run_id for v in versions}) == len(versions), "a candidate was registered twice"
    assert new == [], "days under the floor must not be promoted"


def test_backfilling_the_same_day_again_promotes_nothing_twice(stack, airflow_api, history):
    name = stack.settings.mlflow.model_name
    versions_before = sorted(v.version for v in _versions(name))
    champion_before = registry.champion(name)
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
    deploy = follow_partition(airflow_api, "landfall_deploy", day, started, TIMEOUT_S)
    assert deploy.state == "success"
    # The same data trains the same model: not better than itself, so no promotion and no new version.
    assert deploy.tasks["promote"] == "skipped"
    assert sorted(v.version for v in _versions(name)) == versions_before
    champion_after = registry.champion(name)
    assert (champion_after and champion_after.version) == (champion_before and champion_before.version)
