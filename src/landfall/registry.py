"""The MLflow model registry: who is champion, and an idempotent promotion.

Promotion is keyed on the candidate's training run id: a retry, a re-run or a repeated asset event
finds the version already registered for that run and the alias already on it, and changes nothing.
Aliases, not the deprecated stages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

CHAMPION = "champion"
RUN_TAG = "landfall.candidate_run_id"


@dataclass(frozen=True)
class Promotion:
    version: str
    registered: bool  # a new model version was created
    moved: bool  # the champion alias was moved onto it
    previous_version: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def champion(model_name: str, client: Any = None) -> Any | None:
    """The ModelVersion holding the `champion` alias, or None when there is none (or no model yet)."""
    from mlflow.exceptions import MlflowException

    client = client or _client()
    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None


def version_for_run(model_name: str, run_id: str, client: Any = None) -> Any | None:
    client = client or _client()
    versions = client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    return min(versions, key=lambda v: int(v.version)) if versions else None


def promote(model_name: str, run_id: str, model_uri: str, client: Any = None) -> Promotion:
    """Register the run's model (once) and move the champion alias onto it (once)."""
    import mlflow

    client = client or _client()
    current = champion(model_name, client)
    version = version_for_run(model_name, run_id, client)
    registered = version is None
    if registered:
        created = mlflow.register_model(model_uri, model_name, tags={RUN_TAG: run_id})
        # The returned object predates later changes; read the version back from the registry.
        version = client.get_model_version(model_name, created.version)
    previous = current.version if current else None
    if previous == version.version:
        return Promotion(version.version, registered, False, previous)
    client.set_registered_model_alias(model_name, CHAMPION, version.version)
    return Promotion(version.version, registered, True, previous)
