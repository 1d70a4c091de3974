"""The registry's promotion is a compare-and-set that fails closed, and models load without running their
code: against a real MLflow store (SQLite), no server."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.exceptions import MlflowException

from journeys import logged_trial
from landfall.pipeline import registry
from landfall.pipeline.datagen import make_batch
from landfall.pipeline.features import split
from landfall.pipeline.training.estimators import mlp
from landfall.pipeline.training.models import UntrustedModel, load_trial_model

NAME = "landfall-churn-test"
EXPERIMENT = "landfall-test"


def _trial(settings, seed: int = 1, tags: dict | None = None) -> str:
    return logged_trial(settings, EXPERIMENT, seed, tags)


def _promote(run_id: str, compared_with: str | None, by: str, client) -> registry.Promotion:
    return registry.promote(NAME, run_id, f"runs:/{run_id}/model", compared_with, by, client)


def test_no_model_yet_means_no_champion(local_mlflow):
    assert registry.champion(NAME, local_mlflow) is None


class _Failing:
    """An MLflow client whose registry read fails the way a dead or locked server does."""

    def __init__(self, client, error_code):
        self.client, self.error_code = client, error_code

    def get_registered_model(self, name):
        raise MlflowException("database is locked", error_code=self.error_code)


@pytest.mark.parametrize(
    "error_code", ["INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"]
)
def test_a_registry_failure_is_an_error_never_no_champion(local_mlflow, error_code):
    with pytest.raises(MlflowException, match="locked"):
        registry.champion(NAME, _Failing(local_mlflow, error_code))


def test_the_first_candidate_is_promoted_once_however_often_it_is_retried(local_mlflow, settings):
    run_id = _trial(settings)
    first = _promote(run_id, None, "deploy-run-1", local_mlflow)
    assert (first.result, first.registered, first.version) == ("promoted", True, "1")
    retry = _promote(run_id, None, "deploy-run-1", local_mlflow)  # the same deploy run again
    assert (retry.result, retry.registered) == ("promoted", False)
    replay = _promote(run_id, None, "deploy-run-2", local_mlflow)  # another run, the same candidate
    assert replay.result == "already_champion"
    assert len(local_mlflow.search_model_versions(f"name = '{NAME}'")) == 1
    assert registry.champion_version(NAME, local_mlflow) == "1"


def test_a_stale_evaluation_registers_nothing_and_moves_nothing(local_mlflow, settings):
    """Day 1 and day 2 were both compared with v1; day 1 was promoted first. Day 2 is stale."""
    old, day1, day2 = _trial(settings, 1), _trial(settings, 2), _trial(settings, 3)
    assert _promote(old, None, "r0", local_mlflow).result == "promoted"
    assert _promote(day1, "1", "r1", local_mlflow).result == "promoted"
    stale = _promote(day2, "1", "r2", local_mlflow)
    assert stale.result == "stale" and "version 2" in stale.reason
    assert registry.champion_version(NAME, local_mlflow) == "2"
    assert registry.version_for_run(NAME, day2, local_mlflow) is None
    # Clearing the first deploy run re-runs its promotion: its champion (none) is long gone.
    assert _promote(old, None, "r0-cleared", local_mlflow).result in ("stale", "already_champion")
    assert registry.champion_version(NAME, local_mlflow) == "2"


def test_a_pipeline_model_loads_with_the_projects_trusted_types_and_predicts_the_same(local_mlflow, settings):
    run_id = _trial(settings)
    model = load_trial_model(local_mlflow, run_id, EXPERIMENT)
    frame = split(make_batch(200, seed=5), settings.landing, 0.2, 0.2)["test"].drop(
        columns=[settings.landing.label]
    )
    assert model.predict_proba(frame).shape == (len(frame), 2)
    assert np.isin(model.predict(frame), [0, 1]).all()


def test_only_runs_of_this_pipelines_training_are_loaded(local_mlflow, settings):
    foreign = _trial(settings, tags={"landfall.stage": "trial"})  # no pipeline tag
    with pytest.raises(UntrustedModel, match="not a trial of this pipeline"):
        load_trial_model(local_mlflow, foreign, EXPERIMENT)
    ours = _trial(settings)
    with pytest.raises(UntrustedModel):
        load_trial_model(local_mlflow, ours, "another-experiment")
    with pytest.raises(UntrustedModel, match="cannot be read"):
        load_trial_model(local_mlflow, "0" * 32, EXPERIMENT)


def test_a_pickled_model_or_one_with_code_is_never_loaded(local_mlflow, settings, tmp_path):
    import mlflow.sklearn
    import yaml

    from landfall.pipeline.training.models import load_local_model

    parts = split(make_batch(300, seed=2), settings.landing, 0.2, 0.2)
    model = mlp(
        "binary", {"learning_rate": 0.01, "batch_size": 64, "optimizer": "adam", "hidden_units": 4}, 3
    )
    model.fit(parts["train"].drop(columns=["churned"]), parts["train"]["churned"])
    pickled = tmp_path / "pickled"
    mlflow.sklearn.save_model(model, pickled, serialization_format="cloudpickle")
    with pytest.raises(UntrustedModel, match="cloudpickle"):
        load_local_model(pickled)
    # A skops model whose MLmodel adds code and claims every type is trusted: the MLmodel's list is ignored.
    skops_model = tmp_path / "skops"
    mlflow.sklearn.save_model(
        model,
        skops_model,
        serialization_format="skops",
        skops_trusted_types=["sklearn.neural_network._stochastic_optimizers.AdamOptimizer"],
    )
    descriptor = yaml.safe_load((skops_model / "MLmodel").read_text())
    descriptor["flavors"]["sklearn"]["code"] = "code"
    (skops_model / "MLmodel").write_text(yaml.safe_dump(descriptor))
    with pytest.raises(UntrustedModel, match="with code"):
        load_local_model(skops_model)


def test_two_trials_creating_the_experiment_at_once_both_log_into_it(local_mlflow, settings, monkeypatch):
    """MLflow 3.17's set_experiment loses the race quietly (the run goes to the Default experiment);
    the trainer creates or finds the experiment itself and names it when it starts the run."""
    from mlflow import MlflowClient

    from landfall.pipeline.training.trainer import experiment_id

    winner = experiment_id("raced")  # the other trial created it a moment ago ...
    real_lookup = MlflowClient.get_experiment_by_name
    calls = []

    def lookup_before_the_other_trial_created_it(self, name):
        calls.append(name)
        return None if len(calls) == 1 else real_lookup(self, name)

    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", lookup_before_the_other_trial_created_it)
    assert experiment_id("raced") == winner  # ... so this trial's create fails, and it finds the winner
    assert len(calls) == 2


def _three_champions(settings, client) -> list[str]:
    """v1, then v2 promoted over it, then v3 over v2; returns the three run ids."""
    runs = [_trial(settings, seed) for seed in (11, 12, 13)]
    for index, run_id in enumerate(runs):
        assert _promote(run_id, str(index) if index else None, f"deploy-{index}", client).moved
    return runs


def test_a_rollback_serves_the_previous_champion_and_records_who_and_why(local_mlflow, settings):
    runs = _three_champions(settings, local_mlflow)
    done = registry.rollback(NAME, None, "v3 mislabels annual contracts", "ana (run r1)", local_mlflow)
    assert (done.version, done.run_id, done.rolled_back_from) == ("2", runs[1], "3")
    assert registry.champion_version(NAME, local_mlflow) == "2"
    tags = local_mlflow.get_model_version(NAME, "3").tags
    assert tags["landfall.rollback_reason"] == "v3 mislabels annual contracts"
    assert tags["landfall.rolled_back_by"] == "ana (run r1)" and tags["landfall.rolled_back_to"] == "2"
    restored = local_mlflow.get_model_version(NAME, "2").tags
    assert restored[registry.RESTORED_FROM_TAG] == "3"
    assert restored["landfall.restored_reason"] == "v3 mislabels annual contracts"


def test_a_retried_rollback_does_not_roll_back_a_second_step(local_mlflow, settings):
    _three_champions(settings, local_mlflow)
    first = registry.rollback(NAME, None, "bad", "ana (run r1)", local_mlflow)
    again = registry.rollback(NAME, None, "bad", "ana (run r1)", local_mlflow)  # the task's retry
    assert first.version == again.version == "2"
    assert (first.moved, again.moved) == (True, False)
    assert (again.result, again.rolled_back_from) == ("already_done", "3")
    assert again.as_dict()["moved"] is False
    assert registry.champion_version(NAME, local_mlflow) == "2"
    further = registry.rollback(NAME, None, "v2 too", "ben (run r2)", local_mlflow)  # a new request
    assert (further.version, further.rolled_back_from) == ("1", "2")


def test_a_rollback_to_a_named_version_and_the_refusals_that_say_what_to_do(local_mlflow, settings):
    with pytest.raises(registry.RollbackRefused, match="no champion"):
        registry.rollback(NAME, None, "r", "x", local_mlflow)
    _three_champions(settings, local_mlflow)
    assert registry.rollback(NAME, "1", "back to the first", "ana (run r1)", local_mlflow).version == "1"
    with pytest.raises(registry.RollbackRefused, match="records no previous champion: name one with --to"):
        registry.rollback(NAME, None, "r", "ben (run r2)", local_mlflow)  # v1 was the first champion
    with pytest.raises(registry.RollbackRefused, match="already holds"):
        registry.rollback(NAME, "1", "r", "ben (run r3)", local_mlflow)
    with pytest.raises(registry.RollbackRefused, match="has no version '42'"):
        registry.rollback(NAME, "42", "r", "ben (run r4)", local_mlflow)
    assert registry.champion_version(NAME, local_mlflow) == "1"


def test_a_promotion_after_a_rollback_compares_with_the_restored_champion(local_mlflow, settings):
    runs = _three_champions(settings, local_mlflow)
    registry.rollback(NAME, None, "bad v3", "ana (run r1)", local_mlflow)
    # An evaluation made before the rollback compared with v3: it is stale now.
    assert _promote(_trial(settings, 14), "3", "deploy-late", local_mlflow).result == "stale"
    fresh = _promote(_trial(settings, 15), "2", "deploy-next", local_mlflow)
    assert fresh.moved and fresh.previous_version == "2"
    assert str(registry.version_for_run(NAME, runs[2], local_mlflow).version) == "3"  # kept, not serving


def test_a_rolled_back_version_is_not_crowned_again_by_its_cleared_deploy_run(local_mlflow, settings):
    runs = _three_champions(settings, local_mlflow)
    registry.rollback(NAME, None, "v3 mislabels annual contracts", "ana (run r1)", local_mlflow)
    # Clearing v3's deploy run re-runs promote with what its evaluation saw: champion v2, as now again.
    again = _promote(runs[2], "2", "deploy-2", local_mlflow)
    assert (again.result, again.moved) == ("rolled_back", False)
    assert "landfall rollback --to 3" in again.reason
    assert registry.champion_version(NAME, local_mlflow) == "2"


def test_a_rollback_retried_after_a_promotion_in_between_changes_nothing(local_mlflow, settings):
    _three_champions(settings, local_mlflow)
    registry.rollback(NAME, None, "bad v3", "ana (run r1)", local_mlflow)
    assert _promote(_trial(settings, 16), "2", "deploy-next", local_mlflow).version == "4"
    retried = registry.rollback(NAME, None, "bad v3", "ana (run r1)", local_mlflow)
    assert retried.version == "4" and registry.champion_version(NAME, local_mlflow) == "4"


def test_a_rollback_restores_only_a_model_of_this_pipeline(local_mlflow, settings):
    import mlflow

    _three_champions(settings, local_mlflow)
    foreign = _trial(settings, 17, tags={"team": "someone else"})
    version = mlflow.register_model(f"runs:/{foreign}/model", NAME).version
    with pytest.raises(registry.RollbackRefused, match=f"version {version} cannot be served"):
        registry.rollback(NAME, str(version), "r", "eve (run r9)", local_mlflow, experiment=EXPERIMENT)
    with pytest.raises(registry.RollbackRefused, match="is not a version number"):
        registry.rollback(NAME, "v2", "r", "eve (run r10)", local_mlflow)
    assert registry.rollback(NAME, "01", "leading zero", "eve (run r11)", local_mlflow).version == "1"
    assert registry.champion_version(NAME, local_mlflow) == "1"
