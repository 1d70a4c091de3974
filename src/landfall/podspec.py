"""Render every KubernetesPodOperator task of every Landfall DAG into the pod manifest it would submit.

Proof of the Kubernetes profile without a cluster: the DAG files are loaded with
`compute.profile=kubernetes`, mapped pod tasks are expanded over the configured hyperparameter grid, and
each pod is built by the provider's own `build_pod_request_obj(dry_run=True)`, so what is written is what
the operator would send to the API server (xcom sidecar included).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from landfall.settings import get_settings

SAMPLE_PARTITION = "2026-01-01"
SAMPLE_RUN_ID = "render-pods"


@dataclass(frozen=True)
class RenderedPod:
    dag_id: str
    task_id: str
    map_index: int | None
    path: Path
    manifest: dict[str, Any]


def sample_dataset() -> dict[str, str]:
    """A training_dataset Asset payload for a sample partition, named the way preprocess names it."""
    from landfall.keys import processed_key

    storage = get_settings().storage
    uris = {
        f"{split}_uri": f"s3://{storage.datasets_bucket}/{processed_key(storage, SAMPLE_PARTITION, split)}"
        for split in ("train", "test")
    }
    return {"partition": SAMPLE_PARTITION, **uris}


def _kubernetes_profile_dags(dags_folder: Path) -> dict[str, Any]:
    """Parse the DAG folder as a kubernetes-profile deployment would (the profile is read at parse time)."""
    from airflow.dag_processing.dagbag import DagBag

    previous = os.environ.get("LANDFALL_COMPUTE__PROFILE")
    os.environ["LANDFALL_COMPUTE__PROFILE"] = "kubernetes"
    get_settings.cache_clear()
    sys.path.insert(0, str(dags_folder))
    try:
        bag = DagBag(dag_folder=str(dags_folder), safe_mode=False)
    finally:
        sys.path.remove(str(dags_folder))
        if previous is None:
            os.environ.pop("LANDFALL_COMPUTE__PROFILE", None)
        else:
            os.environ["LANDFALL_COMPUTE__PROFILE"] = previous
        get_settings.cache_clear()
    if bag.import_errors:
        details = "\n".join(
            f"  {path}: {error.splitlines()[-1]}" for path, error in bag.import_errors.items()
        )
        raise RuntimeError(f"DAG files failed to import with compute.profile=kubernetes:\n{details}")
    return bag.dags


def _pod_operators(task: Any) -> list[tuple[int | None, Any]]:
    """The concrete KubernetesPodOperator(s) of a task: itself, or one per trial for a mapped task."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    from landfall.compute import trial_arguments
    from landfall.trials import trial_grid

    if isinstance(task, KubernetesPodOperator):
        return [(None, task)]
    if not isinstance(task, MappedOperator) or not issubclass(task.operator_class, KubernetesPodOperator):
        return []
    expand_keys = set(task.expand_input.value)
    if expand_keys != {"arguments"}:
        raise NotImplementedError(f"{task.task_id}: only pods mapped over `arguments` can be rendered")
    settings = get_settings().model_copy(
        update={"compute": get_settings().compute.model_copy(update={"profile": "kubernetes"})}
    )
    argvs = trial_arguments(sample_dataset(), trial_grid(settings.training.grid), SAMPLE_RUN_ID, settings)
    kwargs = {k: v for k, v in task.partial_kwargs.items() if k not in ("task_group", "dag")}
    operators = []
    for index, argv in enumerate(argvs):
        operator = KubernetesPodOperator(**{**kwargs, "task_id": f"{task.task_id}__{index}"}, arguments=argv)
        operators.append((index, operator))
    return operators


def render_pods(out: Path, dags_folder: Path | None = None) -> list[RenderedPod]:
    """Write one YAML manifest per pod under `out/<dag_id>/`; return what was written."""
    from kubernetes.client import ApiClient

    from landfall.stack.launcher import DAGS_FOLDER

    client = ApiClient()
    rendered: list[RenderedPod] = []
    for dag_id, dag in sorted(_kubernetes_profile_dags(dags_folder or DAGS_FOLDER).items()):
        for task in dag.tasks:
            for map_index, operator in _pod_operators(task):
                pod = operator.build_pod_request_obj(dry_run=True)
                manifest = client.sanitize_for_serialization(pod)
                name = re.sub(r"[^A-Za-z0-9_.-]", "_", task.task_id)
                suffix = "" if map_index is None else f"-{map_index}"
                path = out / dag_id / f"{name}{suffix}.yaml"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(yaml.safe_dump(manifest, sort_keys=False))
                rendered.append(RenderedPod(dag_id, task.task_id, map_index, path, manifest))
    return rendered
