"""Deploy means served, through the real scheduler, MLflow and the scoring service of the stack:

* each promotion passes the canary (the service answers held-out rows as the offline evaluation did)
  and the service then answers /predict with the promoted version;
* `landfall rollback` (the pipeline's rollback DAG) moves the alias back and the service follows;
* a candidate whose canary fails is not promoted, the service keeps serving the champion, and an alert
  says why.

Two champions come from two days: a drifted day beats any champion trained on ordinary data on its own
(drifted) test split, and an ordinary day then beats the drifted model on ordinary data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from mlflow.exceptions import MlflowException

from journeys import (
    CHURN,
    day_key,
    finished_run,
    land,
    positive,
    task_states,
    unique_day,
    wait_for,
    xcom_value,
)
from landfall.core import catalog
from landfall.ops.follow import follow_chain, follow_landing
from landfall.pipeline import registry
from landfall.pipeline.canary import as_rows
from landfall.pipeline.datagen import make_batch, to_parquet
from landfall.pipeline.training.models import load_trial_model
from landfall.serving.client import ServingClient

pytestmark = pytest.mark.stack
TIMEOUT_S = 900


def _served(stack) -> ServingClient:
    return ServingClient(stack.ctx.serving_url, stack.state.secrets().serving_token)


def _promote_day(stack, api, day: str, **batch) -> dict:
    """Land a day and follow it to the end of its deploy run; return that run's canary, promotion and
    activation results."""
    landed = land(stack, day_key(day), to_parquet(make_batch(**batch)))
    ingest = follow_landing(api, landed.key, landed.etag, timeout_s=TIMEOUT_S)
    chain = follow_chain(api, day, ingest.queued_at, timeout_s=TIMEOUT_S)
    deploy = chain[-1]
    assert [deploy.tasks.get(t) for t in ("canary", "promote", "activate")] == ["success"] * 3, [
        (r.dag_id, r.tasks) for r in chain
    ]
    return {
        task: xcom_value(stack, api, CHURN.deploy_dag, deploy.run_id, task)
        for task in ("canary", "promote", "activate")
    }


def _prediction_log(stack, settings) -> list[dict]:
    """Every row the service kept under churn's predictions prefix."""
    from landfall.pipeline import s3 as s3ops
    from landfall.serving.prediction_log import read_log

    s3, bucket = stack.s3_client(), settings.storage.datasets_bucket
    return [
        record
        for obj in s3ops.list_keys(s3, bucket, f"{settings.storage.predictions_prefix}/")
        for record in read_log(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
    ]


@pytest.fixture(scope="module")
def two_champions(launcher):
    stack = launcher
    stack.up()
    os.environ.update(stack.environment())
    api = stack.api()
    drifted = _promote_day(stack, api, unique_day(4100), rows=5000, seed=931, drift=2.0)
    ordinary = _promote_day(stack, api, unique_day(4200), rows=5000, seed=932)
    return stack, api, drifted, ordinary


def test_each_promotion_passes_the_canary_and_is_then_served(two_champions, settings):
    stack, _, drifted, ordinary = two_champions
    for deployed in (drifted, ordinary):
        canary = deployed["canary"]
        assert canary["passed"] and canary["rows"] == settings.deploy.canary_rows
        assert canary["mismatched_predictions"] == 0 and canary["max_probability_gap"] <= 1e-6
        assert deployed["activate"]["served_version"] == deployed["promote"]["version"]
        print(
            f"\nv{deployed['promote']['version']}: canary {canary['canary_s']} s, "
            f"alias -> served {deployed['activate']['alias_to_serving_s']} s"
        )
    version = ordinary["promote"]["version"]
    assert _served(stack).version()["version"] == version
    # What /predict answers is the promoted model's own prediction for those rows.
    rows = make_batch(30, seed=77)[settings.landing.feature_columns]
    answer = _served(stack).predict(as_rows(rows))
    from landfall.pipeline.features import build_features

    model = load_trial_model(registry.client(), ordinary["promote"]["run_id"], None)
    expected = model.predict_proba(build_features(rows, settings.landing))[:, 1]
    assert answer["version"] == version
    assert positive(answer) == pytest.approx(list(expected), abs=1e-9)

    # What it answered is kept: a graceful stop of the service (well within serving.log_flush_seconds)
    # writes the rows still waiting, each under its request id, with the version that answered them.
    asked = _served(stack).predict(as_rows(rows), request_id="e2e-kept-rows")
    stack.stop("serving")
    stack.restart("serving")
    kept = [r for r in _prediction_log(stack, settings) if r["request_id"] == "e2e-kept-rows"]
    assert [r["row_id"] for r in kept] == [str(i) for i in rows["customer_id"]]
    assert [r["prediction"] for r in kept] == asked["predictions"]
    assert {r["model_version"] for r in kept} == {version}
    assert all(r["model_version"] != "None" for r in _prediction_log(stack, settings))  # no canary rows


def test_landfall_rollback_moves_the_alias_back_and_the_service_follows(two_champions, settings, alerts):
    stack, _, drifted, ordinary = two_champions
    name = settings.mlflow.model_name
    env = {**os.environ, **stack.environment()}
    done = subprocess.run(
        [sys.executable, "-m", "landfall.cli", "rollback", "--reason", "v-ordinary scores badly on Mondays"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    old, new = drifted["promote"]["version"], ordinary["promote"]["version"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"v{new} -> v{old}" in done.stdout and f"serves v{old}" in done.stdout
    assert registry.champion_version(name, registry.client()) == old
    assert _served(stack).version()["version"] == old
    tags = registry.client().get_model_version(name, new).tags
    assert tags["landfall.rollback_reason"] == "v-ordinary scores badly on Mondays"
    assert "(landfall rollback)" in tags["landfall.rolled_back_by"]
    wait_for(lambda: [a for a in alerts.of_kind("rolled_back") if f"to v{old}" in a["text"]], 60, "an alert")
    # Nothing before the first champion: the refusal says what to do, and nothing moves.
    again = subprocess.run(
        [sys.executable, "-m", "landfall.cli", "rollback", "--to", old, "--reason", "again"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 1 and f"version {old} already holds 'champion'" in again.stderr


def _rollback_run(api, run_id: str, conf: dict) -> dict:
    """Trigger the rollback DAG as run `run_id` and wait for it to finish."""
    api.trigger(CHURN.rollback_dag, conf, dag_run_id=run_id)
    return finished_run(api, CHURN.rollback_dag, lambda r: r["dag_run_id"] == run_id, timeout_s=300)


def test_a_rollback_interrupted_before_its_alias_move_is_completed_by_its_run(
    two_champions, settings, alerts
):
    """MLflow went away after a rollback run recorded its request and before it moved the alias: that
    run (its retry, here a run with the same id) moves the alias where it recorded, the service serves
    it, and the alert names the version it rolled back from."""
    stack, api, drifted, ordinary = two_champions
    name, client = settings.mlflow.model_name, registry.client()
    current = registry.champion_version(name, client)
    target = (
        ordinary["promote"]["version"]
        if current == drifted["promote"]["version"]
        else drifted["promote"]["version"]
    )
    run_id = f"e2e_interrupted_rollback__{uuid.uuid4().hex[:8]}"
    who, reason = "e2e", "interrupted before the alias move"

    class AliasMoveFails:  # the registry's own rollback, with MLflow gone at its last write
        def __getattr__(self, attribute):
            if attribute == "set_registered_model_alias":
                raise MlflowException("503 Service Unavailable", error_code="TEMPORARILY_UNAVAILABLE")
            return getattr(client, attribute)

    with pytest.raises(MlflowException, match="503"):
        registry.rollback(
            name, target, reason, f"{who} (run {run_id})", AliasMoveFails(), settings.mlflow.experiment
        )
    assert registry.champion_version(name, client) == current
    by = f"{who} (run {run_id})"
    record = registry.rollback_records(client.get_registered_model(name).tags)[by]
    assert (record["from"], record["to"], record["state"]) == (current, target, registry.RECORDED)
    assert registry.RESTORED_BY_TAG not in client.get_model_version(name, target).tags

    conf = {"to_version": None, "reason": reason, "requested_by": who}
    assert _rollback_run(api, run_id, conf)["state"] == "success"
    assert task_states(api, CHURN.rollback_dag, run_id)["activate"] == "success"
    rolled = xcom_value(stack, api, CHURN.rollback_dag, run_id, "rollback")
    assert (rolled["version"], rolled["rolled_back_from"]) == (target, current)
    assert registry.champion_version(name, client) == target
    assert _served(stack).version()["version"] == target
    wait_for(
        lambda: [
            a
            for a in alerts.of_kind("rolled_back")
            if f"to v{target} (from v{current}) by {who} (run {run_id})" in a["text"]
        ],
        60,
        "the rollback's alert",
    )
    # Leave the champion as it was for the tests after this one (a deliberate rollback back to it).
    back = _rollback_run(
        api, f"{run_id}_back", {"to_version": current, "reason": "restore", "requested_by": who}
    )
    assert back["state"] == "success" and registry.champion_version(name, client) == current
    wait_for(lambda: _served(stack).version()["version"] == current, 60, f"the service to serve v{current}")


def _set_pool(api, slots: int) -> None:
    body = {"pool": CHURN.promotion_pool, "slots": slots, "include_deferred": False}
    api.patch(f"pools/{CHURN.promotion_pool}", body, update_mask="slots")


def test_a_failed_canary_promotes_nothing_and_the_service_keeps_the_champion(two_champions, settings, alerts):
    """Day 1's promotion waits behind the closed pool; day 2, evaluated meanwhile, waits behind day 1's
    deploy run. Day 2's offline predictions are then made to disagree with what the service answers (as
    a feature pipeline that drifted apart would): its canary must stop it."""
    stack, api, _, _ = two_champions
    days = [unique_day(4300), unique_day(4400)]
    _set_pool(api, 0)
    try:
        for day, seed in zip(days, (941, 942), strict=True):
            landed = land(stack, day_key(day), to_parquet(make_batch(rows=5000, seed=seed)))
            assert follow_landing(api, landed.key, landed.etag, timeout_s=TIMEOUT_S).outcome == "ingested"
        evaluated = finished_run(api, CHURN.evaluate_dag, lambda r: r.get("partition_key") == days[1])
        evaluation = xcom_value(stack, api, CHURN.evaluate_dag, evaluated["dag_run_id"], catalog.COMPARE_TASK)
        assert evaluation["should_deploy"] and evaluation["canary_uri"], evaluation
        bucket, _, key = evaluation["canary_uri"].removeprefix("s3://").partition("/")
        s3 = stack.s3_client()
        expected = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        expected["probabilities"] = [{"0": row["1"], "1": row["0"]} for row in expected["probabilities"]]
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(expected).encode())
    finally:
        _set_pool(api, 1)
    first = finished_run(api, CHURN.deploy_dag, lambda r: r.get("partition_key") == days[0])
    second = finished_run(api, CHURN.deploy_dag, lambda r: r.get("partition_key") == days[1])
    assert task_states(api, CHURN.deploy_dag, first["dag_run_id"])["activate"] == "success"
    states = task_states(api, CHURN.deploy_dag, second["dag_run_id"])
    assert second["state"] == "failed"
    assert (states["canary"], states["promote"], states["activate"]) == (
        "failed",
        "upstream_failed",
        "upstream_failed",
    )
    champion = registry.champion(settings.mlflow.model_name, registry.client())
    assert champion.tags[registry.PROMOTED_BY_TAG] == first["dag_run_id"]
    assert _served(stack).version()["version"] == str(champion.version)
    assert (
        registry.version_for_run(settings.mlflow.model_name, evaluation["run_id"], registry.client()) is None
    )
    [alert] = [a for a in alerts.of_kind("canary_failed") if evaluation["run_id"] in a["text"]]
    assert "differ from the offline evaluation on" in alert["text"] and "unchanged" in alert["text"]
