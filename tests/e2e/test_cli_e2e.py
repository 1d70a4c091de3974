"""The command lines a user types against the running stack: `landfall` and the plain `airflow` CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from journeys import CHURN, airflow_cli
from landfall.ops.stack.environment import process_environment

pytestmark = pytest.mark.stack


def _landfall(stack, *args: str) -> subprocess.CompletedProcess:
    env = process_environment(stack.ctx, stack.state.secrets())
    return subprocess.run(
        [sys.executable, "-m", "landfall.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_landfall_assets_lists_the_graph_with_producers_and_consumers(stack):
    done = _landfall(stack, "assets", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    graph = {asset["name"]: asset for asset in json.loads(done.stdout)}
    assert set(graph) == set(CHURN.asset_names)
    assert graph[CHURN.landing]["watchers"] == ["churn_s3_landing_watcher"]
    assert graph[CHURN.landing]["consumers"] == [CHURN.ingest_dag]
    for asset, producers in CHURN.producers.items():
        for producer in producers:
            assert f"{producer.dag_id}.{producer.task_id}" in graph[asset]["producers"], asset


def test_landfall_status_shows_every_component_healthy_with_its_restarts(stack):
    done = _landfall(stack, "status", "--json")
    components = {c["name"]: c for c in json.loads(done.stdout)}
    assert done.returncode == 0 and set(components) == set(stack.components)
    assert all(c["healthy"] and c["state"] == "RUNNING" and c["restarts"] >= 0 for c in components.values())


def test_landfall_status_for_a_pipeline_shows_its_chain_its_champion_and_what_is_served(stack):
    """The earlier modules of this worker made churn's champion (test_chain_e2e.py runs first)."""
    done = _landfall(stack, "status", "--pipeline", "churn", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    standing = json.loads(done.stdout)["pipeline"]
    assert standing["pipeline"] == "churn" and standing["model"] == "landfall-churn"
    assert standing["champion"] is not None and standing["champion"].isdigit()
    assert standing["served"] == standing["champion"]
    assert list(standing["chain"]) == [CHURN.ingest_dag, *CHURN.after_ingest]
    assert all(
        run is not None and run["state"] in ("success", "failed", "running", "queued")
        for run in standing["chain"].values()
    )
    text = _landfall(stack, "status", "--pipeline", "churn")
    assert (
        f"pipeline churn: champion {standing['champion']} of landfall-churn, served {standing['served']}"
        in text.stdout
    )
    assert CHURN.deploy_dag in text.stdout


def test_airflow_dags_list_prints_json_only(stack):
    done = airflow_cli(stack, "dags", "list", "-o", "json")
    assert done.returncode == 0, done.stderr[-2000:]
    dag_ids = {dag["dag_id"] for dag in json.loads(done.stdout)}  # nothing but JSON on stdout
    assert {CHURN.ingest_dag, *CHURN.after_ingest} <= dag_ids


def test_airflow_assets_list_still_fails_upstream_so_landfall_assets_is_still_needed(stack):
    """Airflow 3.3.2's `airflow assets list` fails validating an asset that has a watcher. When this test
    fails, upstream has fixed it: point the README at `airflow assets list` and drop the workaround."""
    done = airflow_cli(stack, "assets", "list", "-o", "json")
    assert done.returncode != 0 and "watchers" in done.stdout + done.stderr, (
        "`airflow assets list` works now: the `landfall assets` workaround can go"
    )
