"""A DAG folder with ten configured pipelines: every file still parses fast, each pipeline gets its own
chain whose assets connect only within it, and one invalid pipeline stops only itself."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from config_files import clear_pipeline_environment
from landfall.core.catalog import chain_of
from landfall.core.paths import DAGS_FOLDER as DAGS
from landfall.core.paths import DEFAULT_CONFIG_FILE
from landfall.ops.dagparse import parse_in_subprocess
from landfall.ops.stack.dag_loading import dag_files

NAMES = ["churn", *(f"model_{index}" for index in range(1, 10))]
PARSE_BOUND_S = 1.0


def ten_pipelines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: str | None = None) -> None:
    """The shipped config's churn with nine more pipelines like it (their prefixes and names defaulted)."""
    config = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text())
    churn = config["pipelines"]["churn"]
    config["pipelines"] = {"churn": churn}
    for name in NAMES[1:]:
        config["pipelines"][name] = {k: v for k, v in churn.items() if k not in ("storage", "mlflow")}
    if broken:
        config["pipelines"][broken]["landing"] = {**churn["landing"], "label": "not_a_column"}
    path = tmp_path / "landfall.yaml"
    path.write_text(yaml.safe_dump(config))
    clear_pipeline_environment(monkeypatch)
    monkeypatch.setenv("LANDFALL_CONFIG", str(path))


@pytest.mark.parametrize("name", sorted(dag_files()))
def test_each_dag_file_parses_in_under_a_second_with_ten_pipelines(tmp_path, monkeypatch, name):
    ten_pipelines(tmp_path, monkeypatch)
    report = parse_in_subprocess(DAGS / name)
    print(
        f"\n{name} with 10 pipelines: parse {report['parse_s'] * 1000:.0f} ms "
        f"({report['parse_cpu_s'] * 1000:.0f} ms CPU), {len(report['dag_ids'])} DAGs"
    )
    assert report["import_errors"] == {}
    assert len(report["dag_ids"]) == 10
    # CPU seconds, not wall time: the suite parses beside a running stack on two cores, where the wall
    # time of the same parse doubled (`make bench` reports the wall time on a quiet machine).
    assert report["parse_cpu_s"] < PARSE_BOUND_S


GRAPH_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from airflow.dag_processing.dagbag import DagBag

def names(condition):
    if condition is None:
        return []
    if hasattr(condition, "objects"):  # AssetAll / AssetAny
        return [name for part in condition.objects for name in names(part)]
    return [condition.name]

bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
edges = {}
for dag_id, dag in bag.dags.items():
    consumed = names(getattr(dag.timetable, "asset_condition", None))
    consumed += [i.name for task in dag.tasks for i in task.inlets if hasattr(i, "name")]
    produced = sorted({o.name for task in dag.tasks for o in task.outlets})
    edges[dag_id] = {"consumes": sorted(set(consumed)), "produces": produced}
print(json.dumps({"edges": edges, "errors": {str(k): str(v)[-600:] for k, v in bag.import_errors.items()}}))
"""


def dag_graph() -> dict:
    result = subprocess.run(
        [sys.executable, "-c", GRAPH_SCRIPT, str(DAGS)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_each_pipeline_is_its_own_chain_and_no_asset_joins_two(tmp_path, monkeypatch):
    ten_pipelines(tmp_path, monkeypatch)
    graph = dag_graph()
    assert graph["errors"] == {}
    edges = graph["edges"]
    for name in NAMES:
        chain = chain_of(name)
        assert {dag_id for dag_id in edges if dag_id.startswith(f"landfall_{name}_")} == set(chain.dag_ids)
        for dag_id in chain.dag_ids:
            touched = edges[dag_id]["consumes"] + edges[dag_id]["produces"]
            assert all(asset.startswith(f"{name}.") for asset in touched), (dag_id, touched)
        # The chain, link by link: each DAG downstream of ingest consumes what the one before produced.
        stages = [chain.ingest_dag, *chain.after_ingest]
        for upstream, downstream in pairwise(stages):
            assert set(edges[downstream]["consumes"]) & set(edges[upstream]["produces"]), (
                upstream,
                downstream,
            )


def test_an_invalid_pipeline_is_an_import_error_naming_it_while_the_others_load(tmp_path, monkeypatch):
    ten_pipelines(tmp_path, monkeypatch, broken="model_4")
    graph = dag_graph()
    [(path, error)] = graph["errors"].items()
    assert path.endswith("operations/pipeline_config.py")
    assert "model_4:" in error and "pipelines.model_4.landing" in error and "not_a_column" in error
    loaded = {dag_id.removeprefix("landfall_").rsplit("_", 1)[0] for dag_id in graph["edges"]}
    assert loaded == set(NAMES) - {"model_4"}
