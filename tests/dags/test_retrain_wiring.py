"""`training.retrain: on_drift` in the DAGs: that pipeline's train DAG decides before its search (a short
circuit that skips the search and the reduce), the other pipeline's train DAG has no such task, and a
day rolled up late by the freshness DAG gets its drift report there (the decision waits for it), beside
the daily check that retrains a stale champion."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from config_files import clear_pipeline_environment
from landfall.core import catalog
from landfall.core.catalog import chain_of
from landfall.core.paths import DAGS_FOLDER as DAGS
from landfall.core.paths import DEFAULT_CONFIG_FILE

SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
found = {"errors": {str(k): str(v)[-600:] for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    found["dags"][dag_id] = {
        task.task_id: {
            "type": type(task).__name__,
            "upstream": sorted(task.upstream_task_ids),
            "outlets": sorted(o.name for o in task.outlets),
            "inlets": sorted(i.name for i in task.inlets if hasattr(i, "name")),
            "ignore_downstream_trigger_rules": getattr(task, "ignore_downstream_trigger_rules", None),
        }
        for task in dag.tasks
    }
print(json.dumps(found))
"""


def _dags(tmp_path, monkeypatch) -> dict:
    config = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text())
    churn = config["pipelines"]["churn"]
    steady = {k: v for k, v in churn.items() if k not in ("storage", "mlflow")}
    steady["training"] = {**churn.get("training", {}), "retrain": "on_drift", "max_age_days": 14}
    config["pipelines"] = {"churn": churn, "steady": steady}
    path = tmp_path / "landfall.yaml"
    path.write_text(yaml.safe_dump(config))
    clear_pipeline_environment(monkeypatch)
    monkeypatch.setenv("LANDFALL_CONFIG", str(path))
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(DAGS)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["errors"] == {}
    return found["dags"]


def test_an_on_drift_pipeline_decides_before_its_search_and_the_other_does_not(tmp_path, monkeypatch):
    dags = _dags(tmp_path, monkeypatch)
    steady = dags[chain_of("steady").train_dag]
    decision = steady[catalog.RETRAIN_TASK]
    assert decision["type"] == "_ShortCircuitDecoratedOperator"
    assert decision["ignore_downstream_trigger_rules"] is True  # select_best's rule cannot undo the skip
    assert decision["upstream"] == ["search.training_dataset"]
    assert catalog.RETRAIN_TASK in steady["search.trials"]["upstream"]
    assert catalog.RETRAIN_TASK not in dags[chain_of("churn").train_dag]


def test_the_freshness_dag_reports_a_late_day_drift_and_checks_the_champion_age(tmp_path, monkeypatch):
    dags = _dags(tmp_path, monkeypatch)
    for name in ("churn", "steady"):
        chain = chain_of(name)
        freshness = dags[chain.freshness_dag]
        report = freshness[catalog.DRIFT_TASK]
        assert report["outlets"] == [chain.drift_report]
        assert report["upstream"] == [catalog.LATE_ROLLUP_TASK]
        # The daily check of the champion's age: reads the newest training days, may raise one again.
        stale = freshness[catalog.STALE_CHAMPION_TASK]
        assert stale["inlets"] == stale["outlets"] == [chain.training_dataset] and stale["upstream"] == []
