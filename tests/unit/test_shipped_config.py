"""The config as shipped runs two pipelines: churn (binary) and prices (regression). The test stacks run
churn alone (tests/conftest.py), so what prices needs to reach a champion is checked here with the same
functions a day's run calls: its sample rows, its features and split, its trainer and its gate."""

from __future__ import annotations

import pytest

from config_files import clear_pipeline_environment
from landfall.core.paths import DEFAULT_CONFIG_FILE
from landfall.core.settings import load_project
from landfall.pipeline.datagen import sample_batch
from landfall.pipeline.evaluation import decide
from landfall.pipeline.features import split
from landfall.pipeline.metrics import baseline_of, metrics_of, trivial_answers
from landfall.pipeline.training import estimators
from landfall.pipeline.training.models import check_savable
from landfall.pipeline.training.trainer import answer_split


@pytest.fixture
def shipped(monkeypatch):
    clear_pipeline_environment(monkeypatch)
    monkeypatch.setenv("LANDFALL_CONFIG", str(DEFAULT_CONFIG_FILE))
    return load_project()


def test_the_shipped_config_holds_churn_and_prices_each_in_its_own_world(shipped):
    assert shipped.names() == ["churn", "prices"] and not shipped.broken
    churn, prices = shipped.settings_for("churn"), shipped.settings_for("prices")
    assert (prices.training.task, prices.training.metric) == ("regression", "rmse")
    assert prices.storage.landing_prefix == "prices/landing" and prices.mlflow.model_name == "landfall-prices"
    assert set(churn.storage.owned_prefixes().values()).isdisjoint(prices.storage.owned_prefixes().values())


def test_a_day_of_shipped_prices_rows_trains_a_model_that_its_gate_crowns_first_and_not_twice(shipped):
    settings = shipped.settings_for("prices")
    landing, training = settings.landing, settings.training
    rows = sample_batch(landing, 3000, seed=20261207, task=training.task)
    parts = split(rows, landing, training.validation_fraction, training.test_fraction, task=training.task)
    label = landing.label
    scores = {}
    for params in ({"alpha": alpha} for alpha in training.grid["alpha"]):
        model = estimators.fit(
            training.trainer, training.task, parts["train"], parts["validation"], label, params, 1, None
        )
        check_savable(model, training.trusted_types)  # skops saves it with no type to trust
        truth, answers = answer_split(model, parts["test"], label, training.task)
        scores[params["alpha"]] = metrics_of(training.task, truth, answers)["rmse"]
    best = min(scores.values())
    baseline = baseline_of(training.task, parts["train"][label])
    trivial = metrics_of(training.task, truth, trivial_answers(training.task, baseline, len(truth)))["rmse"]
    print(f"\n  prices rmse {best:,.0f} per alpha {scores}; the training mean scores {trivial:,.0f}")
    first = decide("rmse", best, None, None, settings.deploy, trivial_score=trivial)
    assert first.should_deploy, first.reason
    again = decide("rmse", best, best, 0.0, settings.deploy)
    assert not again.should_deploy, again.reason  # the same model is no improvement
