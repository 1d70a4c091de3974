"""The MLflow model registry: who is champion, and a promotion that is a compare-and-set.

* "No champion" is read from the registered model's aliases, never inferred from an error: only "this
  registered model does not exist" means no champion. Any other failure (timeout, 5xx, a locked
  database) propagates, so the gate fails closed instead of comparing a candidate with nothing.
* A promotion names the champion version its evaluation compared against. If the champion has moved
  since (another day's candidate was promoted first, a replayed evaluation event, a cleared old deploy
  run), nothing is registered and nothing moves: the evaluation is stale.
* It is keyed on the candidate's training run: a retry finds the version already registered for the
  run and the alias already on it, and changes nothing.

MLflow has no conditional alias update, so the check and the move must not interleave with another
promotion: the deploy DAG runs one promotion at a time (see dags/consumers/deploy.py). Aliases, not the
deprecated stages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

CHAMPION = "champion"
RUN_TAG = "landfall.candidate_run_id"
PROMOTED_BY_TAG = "landfall.promoted_by"
PREVIOUS_TAG = "landfall.previous_champion"  # set on promotion: where a rollback goes back to
RESTORED_FROM_TAG = "landfall.restored_from"  # set on rollback: the version it replaced
RESTORED_BY_TAG = "landfall.restored_by"  # the rollback request (a retry of it is a no-op)
ROLLED_BACK_AT_TAG = "landfall.rolled_back_at"  # set on the version a rollback moved the alias away from
ROLLED_BACK_BY_TAG = "landfall.rolled_back_by"  # ... the request that did (its retry finds it here)
ROLLED_BACK_TO_TAG = "landfall.rolled_back_to"  # ... and where it moves the alias (its retry goes there)
# Set on a restored version that an earlier rollback had left: that rollback's request. Its late retry
# then sees that it was done (and undone on purpose), not that its alias move is still to come.
RESTORED_OVER_TAG = "landfall.restored_over"


def client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def champion_version(model_name: str, mlflow_client: Any) -> str | None:
    """The version holding the `champion` alias (one registry call); None when the model has no such
    alias or does not exist yet. Every other MLflow error is raised."""
    from mlflow.exceptions import MlflowException

    try:
        model = mlflow_client.get_registered_model(model_name)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = (model.aliases or {}).get(CHAMPION)
    return None if version is None else str(version)


def champion(model_name: str, mlflow_client: Any) -> Any | None:
    """The ModelVersion holding the `champion` alias (with its run id and tags), or None."""
    version = champion_version(model_name, mlflow_client)
    return None if version is None else mlflow_client.get_model_version(model_name, version)


def version_for_run(model_name: str, run_id: str, mlflow_client: Any) -> Any | None:
    versions = mlflow_client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    return min(versions, key=lambda v: int(v.version)) if versions else None


Result = Literal["promoted", "already_champion", "stale"]


@dataclass(frozen=True)
class Promotion:
    result: Result
    version: str | None  # the candidate's registered version (None when nothing was registered)
    registered: bool  # a new model version was created
    previous_version: str | None  # the champion before
    reason: str

    @property
    def moved(self) -> bool:
        return self.result == "promoted"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "moved": self.moved}


def promote(
    model_name: str,
    run_id: str,
    model_uri: str,
    compared_with: str | None,
    promoted_by: str,
    mlflow_client: Any,
) -> Promotion:
    """Register the run's model (once) and move the champion alias onto it (once), only if the champion
    is still `compared_with` (the version the evaluation scored against; None: there was no champion).
    `promoted_by` names the deploy run: its own retry, after the alias moved, still counts as promoted."""
    import mlflow

    current = champion_version(model_name, mlflow_client)
    existing = version_for_run(model_name, run_id, mlflow_client)
    if existing is not None and current == str(existing.version):
        if existing.tags.get(PROMOTED_BY_TAG) == promoted_by:
            return Promotion("promoted", current, False, None, f"version {current} is champion (this run)")
        return Promotion(
            "already_champion",
            current,
            False,
            current,
            f"version {current} (run {run_id}) already holds '{CHAMPION}'",
        )
    if existing is not None and existing.tags.get(ROLLED_BACK_AT_TAG):
        # An operator rolled this model back: clearing its old deploy run (or a late retry) must not
        # crown it again. Restoring it is a deliberate `landfall rollback --to`.
        return Promotion(
            "rolled_back",
            str(existing.version),
            False,
            current,
            f"version {existing.version} was rolled back at {existing.tags[ROLLED_BACK_AT_TAG]} "
            f"({existing.tags.get('landfall.rollback_reason') or 'no reason given'}): it is not promoted "
            f"again; `landfall rollback --to {existing.version}` restores it on purpose",
        )
    if current != compared_with:
        return Promotion(
            "stale",
            None if existing is None else str(existing.version),
            False,
            current,
            f"the champion is version {current} now, not {compared_with} as when this candidate was "
            f"evaluated: a stale evaluation is never promoted (the next evaluation compares with v{current})",
        )
    registered = existing is None
    if registered:
        created = mlflow.register_model(model_uri, model_name, tags={RUN_TAG: run_id})
        # The returned object predates later changes; read the version back from the registry.
        existing = mlflow_client.get_model_version(model_name, created.version)
    mlflow_client.set_model_version_tag(model_name, existing.version, PROMOTED_BY_TAG, promoted_by)
    if current is not None:  # what `landfall rollback` goes back to
        mlflow_client.set_model_version_tag(model_name, existing.version, PREVIOUS_TAG, current)
    mlflow_client.set_registered_model_alias(model_name, CHAMPION, existing.version)
    return Promotion(
        "promoted",
        str(existing.version),
        registered,
        current,
        f"version {existing.version} is champion (was {current})",
    )


@dataclass(frozen=True)
class Rollback:
    version: str  # the version that holds the alias now
    run_id: str
    rolled_back_from: str | None
    reason: str
    by: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RollbackRefused(ValueError):
    """A rollback that cannot be done as asked; the message says what to ask instead."""


def rollback(
    model_name: str,
    to_version: str | None,
    reason: str,
    by: str,
    mlflow_client: Any,
    experiment: str | None = None,
) -> Rollback:
    """Move the champion alias back: to `to_version`, or to the version that was champion before the
    current one (recorded when the current one was promoted). Who and why are recorded as tags: on the
    version left (`landfall.rolled_back_*`, `landfall.rollback_reason`) and on the one restored
    (`landfall.restored_from`, `landfall.restored_by`, `landfall.restored_reason`). Only a model of this
    pipeline's training (in `experiment`) is restored.

    `by` names the request. The tags are written before the alias moves, and MLflow can fail in between
    (a 503, a restart, a killed worker), so a request is done only once the alias has left the version
    it recorded as left: while that version is still champion, a retry completes the request (moves the
    alias to the version it recorded as restored). Once the alias has left it (this request moved it; a
    promotion or another rollback may have followed), a retry changes nothing: it never rolls back a
    second step."""
    from datetime import UTC, datetime

    from mlflow.exceptions import MlflowException

    from landfall.pipeline.training.models import UntrustedModel, check_pipeline_run

    current = champion(model_name, mlflow_client)
    if current is None:
        raise RollbackRefused(f"{model_name} has no champion to roll back from")
    versions = mlflow_client.search_model_versions(f"name = '{model_name}'")
    left = next((v for v in versions if v.tags.get(ROLLED_BACK_BY_TAG) == by), None)
    if left is not None and (
        str(left.version) != str(current.version) or left.tags.get(RESTORED_OVER_TAG) == by
    ):
        return Rollback(str(current.version), current.run_id, str(left.version), reason, by)
    restored_here = next((v for v in versions if v.tags.get(RESTORED_BY_TAG) == by), None)
    if left is None and restored_here is not None:
        # A later rollback from the same version rewrote its `rolled_back_*` tags: this one was done.
        return Rollback(
            str(current.version), current.run_id, restored_here.tags.get(RESTORED_FROM_TAG), reason, by
        )
    # A new request, or one whose alias move has not happened yet (the version it left is still
    # champion): that one goes where it recorded it would.
    recorded = left.tags.get(ROLLED_BACK_TO_TAG) if left is not None else None
    target = str(recorded or to_version or current.tags.get(PREVIOUS_TAG) or "").strip()
    if not target:
        raise RollbackRefused(
            f"version {current.version} records no previous champion: name one with --to VERSION"
        )
    if not target.isdigit():
        raise RollbackRefused(f"{target!r} is not a version number")
    target = str(int(target))  # "007" is version 7
    if target == str(current.version):
        raise RollbackRefused(f"version {target} already holds '{CHAMPION}'")
    try:
        restored = mlflow_client.get_model_version(model_name, target)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise RollbackRefused(f"{model_name} has no version {target!r}") from None
        raise
    try:
        check_pipeline_run(mlflow_client, restored.run_id, experiment)
    except UntrustedModel as error:
        raise RollbackRefused(f"version {target} cannot be served: {error}") from None
    at = (left.tags.get(ROLLED_BACK_AT_TAG) if left is not None else None) or datetime.now(UTC).isoformat(
        timespec="seconds"
    )
    # The request's own tag last: once a version carries it, the target is recorded beside it.
    for key, value in {
        ROLLED_BACK_AT_TAG: at,
        "landfall.rollback_reason": reason,
        ROLLED_BACK_TO_TAG: target,
        ROLLED_BACK_BY_TAG: by,
    }.items():
        mlflow_client.set_model_version_tag(model_name, str(current.version), key, value)
    if restored.tags.get(ROLLED_BACK_BY_TAG):
        mlflow_client.set_model_version_tag(
            model_name, target, RESTORED_OVER_TAG, restored.tags[ROLLED_BACK_BY_TAG]
        )
    mlflow_client.set_model_version_tag(model_name, target, RESTORED_FROM_TAG, str(current.version))
    mlflow_client.set_model_version_tag(model_name, target, RESTORED_BY_TAG, by)
    mlflow_client.set_model_version_tag(model_name, target, "landfall.restored_reason", reason)
    mlflow_client.set_registered_model_alias(model_name, CHAMPION, target)
    return Rollback(target, restored.run_id, str(current.version), reason, by)
