"""Render every KubernetesPodOperator task of every Landfall DAG into the pod manifest it would submit.

Proof of the Kubernetes profile without a cluster: the DAG files are loaded with
`compute.profile=kubernetes`, mapped pod tasks are expanded over the configured hyperparameter grid, and
each pod is built by the provider's own `build_pod_request_obj(dry_run=True)`, so what is written is what
the operator would send to the API server (xcom sidecar included).

The profile is read when the DAG files are parsed, so parsing happens in a fresh interpreter started
with the profile (and any other override) in its environment: settings are loaded once per process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from landfall.core.catalog import chain_of
from landfall.core.settings import Settings, get_project

SAMPLE_PARTITION = "2026-01-01"
SAMPLE_RUN_ID = "render-pods"
SAMPLE_VERSION = "1767225600-0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class RenderedPod:
    dag_id: str
    task_id: str
    map_index: int | None
    path: Path
    manifest: dict[str, Any]


def sample_dataset(settings: Settings) -> dict[str, str]:
    """A training_dataset Asset payload for a sample partition, named the way preprocess names it."""
    from landfall.pipeline.keys import processed_key

    storage = settings.storage
    uris = {
        f"{split}_uri": f"s3://{storage.datasets_bucket}/"
        + processed_key(storage, SAMPLE_PARTITION, SAMPLE_VERSION, split)
        for split in ("train", "validation", "test")
    }
    return {"partition": SAMPLE_PARTITION, "version": SAMPLE_VERSION, **uris}


def _load_dags(dags_folder: Path) -> dict[str, Any]:
    """Parse the DAG folder in this process, as the dag-processor would."""
    from airflow.dag_processing.dagbag import DagBag

    sys.path.insert(0, str(dags_folder))
    try:
        bag = DagBag(dag_folder=str(dags_folder), safe_mode=False)
    finally:
        sys.path.remove(str(dags_folder))
    if bag.import_errors:
        details = "\n".join(
            f"  {path}: {error.splitlines()[-1]}" for path, error in bag.import_errors.items()
        )
        raise RuntimeError(
            f"DAG files failed to import with compute.profile={get_project().compute.profile}:\n{details}"
        )
    return bag.dags


def _pod_operators(task: Any, settings: Settings) -> list[tuple[int | None, Any]]:
    """The concrete KubernetesPodOperator(s) of a task: itself, or one per trial for a mapped task."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    from landfall.airflow.compute import trial_arguments
    from landfall.pipeline.training.trials import trial_grid

    if isinstance(task, KubernetesPodOperator):
        return [(None, task)]
    if not isinstance(task, MappedOperator) or not issubclass(task.operator_class, KubernetesPodOperator):
        return []
    expand_keys = set(task.expand_input.value)
    if expand_keys != {"arguments"}:
        raise NotImplementedError(f"{task.task_id}: only pods mapped over `arguments` can be rendered")
    grid = trial_grid(settings.training.grid)
    argvs = trial_arguments(sample_dataset(settings), grid, SAMPLE_RUN_ID, settings)
    kwargs = {k: v for k, v in task.partial_kwargs.items() if k not in ("task_group", "dag")}
    operators = []
    for index, argv in enumerate(argvs):
        operator = KubernetesPodOperator(**{**kwargs, "task_id": f"{task.task_id}__{index}"}, arguments=argv)
        operators.append((index, operator))
    return operators


def _render_here(out: Path) -> list[dict[str, Any]]:
    """Write one YAML manifest per pod under `out/<dag_id>/` (this process's settings decide the profile)."""
    from kubernetes.client import ApiClient

    from landfall.core.paths import DAGS_FOLDER

    client = ApiClient()
    written = []
    pipeline_of = {dag_id: s for s in get_project().all_settings() for dag_id in chain_of(s.pipeline).dag_ids}
    for dag_id, dag in sorted(_load_dags(DAGS_FOLDER).items()):
        for task in dag.tasks:
            for map_index, operator in _pod_operators(task, pipeline_of[dag_id]):
                manifest = client.sanitize_for_serialization(operator.build_pod_request_obj(dry_run=True))
                name = re.sub(r"[^A-Za-z0-9_.-]", "_", task.task_id)
                suffix = "" if map_index is None else f"-{map_index}"
                path = out / dag_id / f"{name}{suffix}.yaml"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(yaml.safe_dump(manifest, sort_keys=False))
                written.append(
                    {"dag_id": dag_id, "task_id": task.task_id, "map_index": map_index, "path": str(path)}
                )
    return written


def _shapes_here() -> dict[str, dict[str, str]]:
    """Each DAG's tasks and their operator class (a mapped task's is its operator_class)."""
    from landfall.core.paths import DAGS_FOLDER

    return {
        dag_id: {task.task_id: getattr(task, "operator_class", type(task)).__name__ for task in dag.tasks}
        for dag_id, dag in _load_dags(DAGS_FOLDER).items()
    }


def _in_fresh_interpreter(command: list[str], environ: dict[str, str]) -> Any:
    """Run this module's `command` in a new interpreter; its answer comes back through a JSON file
    (stdout also carries Airflow's log lines)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="landfall-podspec-") as folder:
        answer = Path(folder) / "answer.json"
        _run_module([*command, str(answer)], environ)
        return json.loads(answer.read_text())


def _run_module(command: list[str], environ: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "landfall.airflow.podspec", *command],
        env={**os.environ, **environ},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "rendering failed"
        )
    return done.stdout


def render_pods(out: Path, environ: dict[str, str] | None = None) -> list[RenderedPod]:
    """Render the kubernetes profile's pods under `out/<dag_id>/`; `environ` adds settings overrides."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**(environ or {}), "LANDFALL_COMPUTE__PROFILE": "kubernetes"}
    written = _in_fresh_interpreter(["render", str(out)], env)
    return [
        RenderedPod(
            w["dag_id"],
            w["task_id"],
            w["map_index"],
            Path(w["path"]),
            yaml.safe_load(Path(w["path"]).read_text()),
        )
        for w in written
    ]


def dag_shapes(profile: str) -> dict[str, dict[str, str]]:
    """The DAGs' tasks and operators as parsed under `profile` (in a fresh interpreter)."""
    return _in_fresh_interpreter(["shapes"], {"LANDFALL_COMPUTE__PROFILE": profile})


if __name__ == "__main__":
    answer = _render_here(Path(sys.argv[2])) if sys.argv[1] == "render" else _shapes_here()
    Path(sys.argv[-1]).write_text(json.dumps(answer))
