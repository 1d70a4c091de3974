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

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

CHAMPION = "champion"
RUN_TAG = "landfall.candidate_run_id"
PROMOTED_BY_TAG = "landfall.promoted_by"
PREVIOUS_TAG = "landfall.previous_champion"  # set on promotion: where a rollback goes back to
RESTORED_FROM_TAG = "landfall.restored_from"  # set on rollback: the version it replaced
RESTORED_BY_TAG = "landfall.restored_by"  # ... the request that did
ROLLED_BACK_AT_TAG = "landfall.rolled_back_at"  # set on the version a rollback moved the alias away from
ROLLED_BACK_BY_TAG = "landfall.rolled_back_by"  # ... the request that did
ROLLED_BACK_TO_TAG = "landfall.rolled_back_to"  # ... and where it moved the alias
# One registered-model tag per rollback request (`by`): ROLLBACK_RECORD_PREFIX + sha256(by)[:16], a JSON
# record of what it moves (from, to) and whether it is done. A retry decides from it alone; the
# per-version tags above are for people (and for promote(), which never crowns a rolled-back version).
ROLLBACK_RECORD_PREFIX = "landfall.rollback."


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


RollbackResult = Literal["rolled_back", "already_done", "overtaken"]
RECORDED, MOVED = "recorded", "moved"  # a rollback record's states: before its alias move, and done


@dataclass(frozen=True)
class Rollback:
    version: str  # the version that holds the alias now
    run_id: str  # ... and its training run
    rolled_back_from: str  # the version the request left (when "overtaken": the one it meant to leave)
    reason: str
    by: str
    # "rolled_back": this call moved the alias (or recorded as done the move that an earlier try of the
    # same request made before it failed); "already_done": the request was done before, nothing moved;
    # "overtaken": the champion changed, or another request came, before this request's alias move,
    # which now never happens: nothing moved.
    result: RollbackResult

    @property
    def moved(self) -> bool:
        return self.result == "rolled_back"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "moved": self.moved}


class RollbackRefused(ValueError):
    """A rollback that cannot be done as asked; the message says what to ask instead."""


def rollback_record_key(by: str) -> str:
    """The registered-model tag that records the rollback request `by`."""
    return ROLLBACK_RECORD_PREFIX + hashlib.sha256(by.encode()).hexdigest()[:16]


def rollback_records(tags: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The rollback requests recorded in a registered model's tags, by request (`by`)."""
    records: dict[str, dict[str, Any]] = {}
    for key, value in tags.items():
        if not key.startswith(ROLLBACK_RECORD_PREFIX):
            continue
        try:
            record = json.loads(value)
        except ValueError:
            continue
        if isinstance(record, dict) and key == rollback_record_key(str(record.get("by"))):
            records[record["by"]] = record
    return records


def _write_record(model_name: str, record: dict[str, Any], mlflow_client: Any) -> None:
    key = rollback_record_key(record["by"])
    mlflow_client.set_registered_model_tag(model_name, key, json.dumps(record, sort_keys=True))


def _record_done(model_name: str, record: dict[str, Any], mlflow_client: Any) -> None:
    """After a request's alias move: the tags for people on both versions, then its record says done."""
    left, restored = record["from"], record["to"]
    for key, value in {
        ROLLED_BACK_AT_TAG: record["at"],
        "landfall.rollback_reason": record["reason"],
        ROLLED_BACK_TO_TAG: restored,
        ROLLED_BACK_BY_TAG: record["by"],
    }.items():
        mlflow_client.set_model_version_tag(model_name, left, key, value)
    for key, value in {
        RESTORED_FROM_TAG: left,
        RESTORED_BY_TAG: record["by"],
        "landfall.restored_reason": record["reason"],
    }.items():
        mlflow_client.set_model_version_tag(model_name, restored, key, value)
    record["state"] = MOVED
    _write_record(model_name, record, mlflow_client)


def _answer(
    model_name: str, record: dict[str, Any], champion_now: str, result: RollbackResult, mlflow_client: Any
) -> Rollback:
    run_id = mlflow_client.get_model_version(model_name, champion_now).run_id
    return Rollback(champion_now, run_id, record["from"], record["reason"], record["by"], result)


def rollback(
    model_name: str,
    to_version: str | None,
    reason: str,
    by: str,
    mlflow_client: Any,
    experiment: str | None = None,
) -> Rollback:
    """Move the champion alias back: to `to_version`, or to the version that was champion before the
    current one (recorded when the current one was promoted). Only a model of this pipeline's training
    (in `experiment`) is restored. Who and why are recorded as tags on the version left
    (`landfall.rolled_back_*`, `landfall.rollback_reason`) and on the one restored
    (`landfall.restored_*`), once the alias has moved: a request abandoned before its move marks no
    version as rolled back (promote() never crowns a version that carries `landfall.rolled_back_at`).

    `by` names the request; its retry (or a later clear of its DAG run) calls again with the same `by`.
    MLflow can fail between any two writes (a 503, a restart, a killed worker), and a late retry can come
    after other rollbacks and promotions, so what a call does is decided from the request's own record,
    a tag on the registered model (`rollback_record_key(by)`: from, to, state, a sequence number),
    written before the alias moves and marked "moved" after the tags for people:

    * no record: a new request, one step back from the current champion (or to `to_version`);
    * recorded, not moved, the newest request, and the champion still its `from`: its move is finished
      (to the version it recorded, whatever this call's `to_version`);
    * anything else changes nothing: it was done ("already_done"), or the champion moved or another
      request came before its alias move ("overtaken": a request never moves the alias after that, so
      its late retry cannot undo what came since, nor roll back a second step).

    The newest request found not moved while the champion is its `to` moved the alias before failing
    (the answer was lost, or a later write failed): whichever call sees it first records it as done.
    """
    from datetime import UTC, datetime

    from mlflow.exceptions import MlflowException

    from landfall.pipeline.training.models import UntrustedModel, check_pipeline_run

    try:
        model = mlflow_client.get_registered_model(model_name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        model = None
    current = None if model is None else (model.aliases or {}).get(CHAMPION)
    if current is None:
        raise RollbackRefused(f"{model_name} has no champion to roll back from")
    current = str(current)
    records = rollback_records(model.tags or {})
    newest = max(records.values(), key=lambda record: int(record.get("seq", 0)), default=None)
    if newest is not None and newest["state"] != MOVED and current == newest["to"]:
        _record_done(model_name, newest, mlflow_client)
        if newest["by"] == by:  # this request's earlier try moved the alias, then failed
            return _answer(model_name, newest, current, "rolled_back", mlflow_client)
    mine = records.get(by)
    if mine is not None:
        if mine["state"] != MOVED and mine is newest and current == mine["from"]:
            mlflow_client.set_registered_model_alias(model_name, CHAMPION, mine["to"])
            _record_done(model_name, mine, mlflow_client)
            return _answer(model_name, mine, mine["to"], "rolled_back", mlflow_client)
        result: RollbackResult = "already_done" if mine["state"] == MOVED else "overtaken"
        return _answer(model_name, mine, current, result, mlflow_client)

    champion_now = mlflow_client.get_model_version(model_name, current)
    target = str(to_version or champion_now.tags.get(PREVIOUS_TAG) or "").strip()
    if not target:
        raise RollbackRefused(f"version {current} records no previous champion: name one with --to VERSION")
    if not target.isdigit():
        raise RollbackRefused(f"{target!r} is not a version number")
    target = str(int(target))  # "007" is version 7
    if target == current:
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
    record = {
        "by": by,
        "from": current,
        "to": target,
        "reason": reason,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "state": RECORDED,
        "seq": 1 + max((int(r.get("seq", 0)) for r in records.values()), default=0),
    }
    _write_record(model_name, record, mlflow_client)
    mlflow_client.set_registered_model_alias(model_name, CHAMPION, target)
    _record_done(model_name, record, mlflow_client)
    return Rollback(target, restored.run_id, current, reason, by, "rolled_back")
