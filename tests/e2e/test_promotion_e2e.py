"""No worse model crowned, through the real scheduler: two days' candidates compared with the same
champion race to deploy, and an operator clears an old deploy run. A promotion is a compare-and-set:
only a candidate whose evaluation compared it with the champion of the moment is promoted.

The racing order is made deterministic with the promotion pool itself: while its one slot is closed,
both days are evaluated against the same champion and their promotions wait, as they would behind a
slow deploy."""

from __future__ import annotations

import pytest

from journeys import (
    CHURN,
    day_key,
    finished_run,
    land,
    model_versions,
    partition_events,
    task_states,
    unique_day,
    wait_for,
    xcom_value,
)
from landfall.core import catalog
from landfall.ops.follow import follow_chain, follow_landing, follow_partition
from landfall.pipeline import registry
from landfall.pipeline.datagen import make_batch, to_parquet

pytestmark = pytest.mark.stack
TIMEOUT_S = 900


def _champion(stack) -> str | None:
    return registry.champion_version(stack.settings.mlflow.model_name, registry.client())


def _set_pool(api, slots: int) -> None:
    body = {"pool": CHURN.promotion_pool, "slots": slots, "include_deferred": False}
    api.patch(f"pools/{CHURN.promotion_pool}", body, update_mask="slots")


def _land_day(stack, api, day: str, **batch) -> object:
    landed = land(stack, day_key(day), to_parquet(make_batch(**batch)))
    ingest = follow_landing(api, landed.key, landed.etag, timeout_s=TIMEOUT_S)
    assert ingest.outcome == "ingested"
    return ingest


@pytest.fixture(scope="module")
def race(launcher):
    """A weak champion W, then days 1 and 2 both evaluated against it while promotions wait."""
    import os

    stack = launcher
    stack.up()
    os.environ.update(stack.environment())
    api = stack.api()
    # W: trained on a very different population; on today's data it is poor, so both days beat it.
    weak_day = unique_day(3700)
    ingest = _land_day(stack, api, weak_day, rows=5000, seed=901, drift=2.0)
    chain = follow_chain(api, weak_day, ingest.queued_at, timeout_s=TIMEOUT_S)
    assert chain[-1].tasks["promote"] == "success", [(r.dag_id, r.tasks) for r in chain]
    weak = _champion(stack)
    days = {"one": unique_day(3800), "two": unique_day(3900)}
    _set_pool(api, 0)
    try:
        first = _land_day(stack, api, days["one"], rows=6000, seed=902)
        second = _land_day(stack, api, days["two"], rows=4000, seed=903, label_noise=0.04)
        # Read from the evaluate runs' XComs: while a deploy run is queued behind the closed pool, Airflow
        # 3.3's REST API answers 500 for the evaluation events (a created run has no start_date yet).
        evaluations = {}
        for name, day in days.items():
            run = finished_run(
                api, CHURN.evaluate_dag, lambda r, day=day: r.get("partition_key") == day, TIMEOUT_S
            )
            evaluations[name] = xcom_value(
                stack, api, CHURN.evaluate_dag, run["dag_run_id"], catalog.COMPARE_TASK
            )
        assert _champion(stack) == weak, "a promotion ran while its pool was closed"
    finally:
        _set_pool(api, 1)
    deploys = {
        name: follow_partition(
            api, CHURN.deploy_dag, day, (first if name == "one" else second).queued_at, TIMEOUT_S
        )
        for name, day in days.items()
    }
    return {
        "weak": weak,
        "weak_run": chain[-1].run_id,
        "days": days,
        "evaluations": evaluations,
        "deploys": deploys,
    }


def test_days_unlike_the_champions_training_window_are_reported_as_drifted_and_alerted(
    race, launcher, alerts
):
    """W was trained on a shifted population; the two ordinary days are compared with W's window when they
    are prepared (W is champion then): each `drift_report` says drifted, naming the features that moved,
    and a `drift` alert names the same ones."""
    api = launcher.api()
    for name, day in race["days"].items():
        [event] = wait_for(lambda day=day: partition_events(api, CHURN.drift_report, day) or None, 120, day)
        report = event["extra"]
        assert report["verdict"] == "drifted" and report["champion_version"] == race["weak"], (name, report)
        assert report["drifted"] and all(report["psi"][f] >= 0.2 for f in report["drifted"])
        assert report["label_psi"] is not None
        [alert] = [a for a in alerts.of_kind("drift") if a["details"]["day"] == day]
        assert alert["details"]["drifted"] == report["drifted"]
        assert f"champion version {race['weak']}" in alert["text"]


def test_both_days_were_compared_with_the_same_champion_and_both_beat_it(race):
    for name, evaluation in race["evaluations"].items():
        assert evaluation["champion_version"] == race["weak"], name
        assert evaluation["should_deploy"] is True, (name, evaluation["reason"])


def test_the_first_promotion_wins_and_the_stale_second_registers_nothing(stack, airflow_api, race):
    one, two = race["deploys"]["one"], race["deploys"]["two"]
    assert (one.state, one.tasks["promote"]) == ("success", "success")
    assert (two.state, two.tasks["promote"]) == ("success", "skipped")
    name = stack.settings.mlflow.model_name
    champion = registry.champion(name, registry.client())
    assert champion.run_id == race["evaluations"]["one"]["run_id"]
    assert registry.version_for_run(name, race["evaluations"]["two"]["run_id"], registry.client()) is None
    notice = xcom_value(stack, airflow_api, CHURN.deploy_dag, two.run_id, "notify")
    assert notice["outcome"] == "skipped" and "stale evaluation" in notice["message"], notice
    assert partition_events(airflow_api, CHURN.production_model, race["days"]["two"]) == []


def test_clearing_an_old_deploy_run_leaves_the_champion_where_it_is(stack, airflow_api, race):
    """The most ordinary operator action: clear last week's deploy run in the UI (here: its REST call)."""
    champion_before, versions_before = _champion(stack), len(model_versions(stack.settings.mlflow.model_name))
    airflow_api.post(f"dags/{CHURN.deploy_dag}/dagRuns/{race['weak_run']}/clear", {"dry_run": False})

    def rerun_done():
        run = airflow_api.get(f"dags/{CHURN.deploy_dag}/dagRuns/{race['weak_run']}")
        states = task_states(airflow_api, CHURN.deploy_dag, race["weak_run"])
        return states if run["state"] in ("success", "failed") and states.get("notify") == "success" else None

    states = wait_for(rerun_done, TIMEOUT_S, "the cleared deploy run to finish again")
    assert states["promote"] == "skipped", states
    assert _champion(stack) == champion_before
    assert len(model_versions(stack.settings.mlflow.model_name)) == versions_before
