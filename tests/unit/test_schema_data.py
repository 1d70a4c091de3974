"""Sample rows made from a pipeline's schema: they pass its landing checks and their label is learnable,
for the shipped churn schema and for one nobody wrote a generator for."""

from __future__ import annotations

import io

import pytest
import yaml

from config_files import METERS_LANDING, PRICES_LANDING, TIERS_LANDING
from landfall.core.pipeline_settings import LandingSettings
from landfall.pipeline.datagen import sample_batch, to_parquet
from landfall.pipeline.features import split
from landfall.pipeline.schema_data import make_rows
from landfall.pipeline.validation import validate_parquet

METERS = LandingSettings.model_validate(yaml.safe_load(METERS_LANDING))
TIERS = LandingSettings.model_validate(yaml.safe_load(TIERS_LANDING))
PRICES = LandingSettings.model_validate(yaml.safe_load(PRICES_LANDING))


@pytest.mark.parametrize("which", ["meters", "churn"])
def test_rows_made_from_a_schema_pass_its_landing_checks(settings, which):
    landing = METERS if which == "meters" else settings.landing
    body = to_parquet(make_rows(landing, 2000, seed=5, drift=1.0))
    report = validate_parquet(io.BytesIO(body), len(body), landing)
    assert report.ok, report.problems


def test_their_label_is_learnable_and_has_both_classes():
    from sklearn.linear_model import LogisticRegression

    parts = split(make_rows(METERS, 6000, seed=8), METERS, 0.2, 0.2)
    train, test = parts["train"], parts["test"]
    model = LogisticRegression(max_iter=2000).fit(train.drop(columns=["faulty"]), train["faulty"])
    accuracy = model.score(test.drop(columns=["faulty"]), test["faulty"])
    assert 0.3 < train["faulty"].mean() < 0.7
    assert accuracy > 0.9, accuracy


@pytest.mark.parametrize(("landing", "task"), [(TIERS, "multiclass"), (PRICES, "regression")])
def test_multiclass_and_regression_rows_pass_their_checks(landing, task):
    body = to_parquet(make_rows(landing, 2000, seed=5, drift=1.0, task=task))
    report = validate_parquet(io.BytesIO(body), len(body), landing)
    assert report.ok, report.problems


def test_a_multiclass_label_has_every_class_about_as_often_and_is_learnable():
    from sklearn.linear_model import LogisticRegression

    parts = split(make_rows(TIERS, 6000, seed=8, task="multiclass"), TIERS, 0.2, 0.2, task="multiclass")
    train, test = parts["train"], parts["test"]
    shares = train["tier"].value_counts(normalize=True)
    assert set(shares.index) == {"bronze", "silver", "gold"} and shares.min() > 0.25
    model = LogisticRegression(max_iter=3000).fit(train.drop(columns=["tier"]), train["tier"])
    assert model.score(test.drop(columns=["tier"]), test["tier"]) > 0.8


def test_a_regression_label_is_a_learnable_number_within_its_bounds():
    from sklearn.linear_model import LinearRegression

    frame = make_rows(PRICES, 6000, seed=8, task="regression")
    assert frame["price"].between(0, 2_000_000).all() and frame["price"].nunique() > 5000
    parts = split(frame, PRICES, 0.2, 0.2, task="regression")
    train, test = parts["train"], parts["test"]
    model = LinearRegression().fit(train.drop(columns=["price"]), train["price"])
    assert model.score(test.drop(columns=["price"]), test["price"]) > 0.8  # R^2


def test_every_day_follows_the_same_rule_and_ids_differ_by_seed():
    first, second = make_rows(METERS, 500, seed=1), make_rows(METERS, 500, seed=2)
    assert set(first["meter_id"]).isdisjoint(second["meter_id"])
    assert first.equals(make_rows(METERS, 500, seed=1))


def test_the_churn_schema_keeps_its_own_realistic_generator(settings):
    assert list(sample_batch(settings.landing, 10, seed=3).columns) == [
        c.name for c in settings.landing.columns
    ]
    assert "tenure_months" in sample_batch(settings.landing, 10, seed=3)
    assert list(sample_batch(METERS, 10, seed=3).columns) == [c.name for c in METERS.columns]


@pytest.mark.parametrize(("kind", "code"), [("schema", "schema_mismatch"), ("nulls", "nulls")])
def test_a_bad_file_of_any_schema_is_caught_as_the_churn_ones_are(kind, code):
    from landfall.pipeline.datagen import make_corrupt

    body = make_corrupt(kind, seed=4, landing=METERS)
    report = validate_parquet(io.BytesIO(body), len(body), METERS)
    assert code in {problem.code for problem in report.problems}, report.problems


def test_string_ids_ids_above_a_minimum_bools_and_negative_ranges_fit_their_schema():
    odd = LandingSettings.model_validate(
        {
            "id_column": "code",
            "label": "y",
            "columns": [
                {"name": "code", "dtype": "string"},
                {"name": "serial", "dtype": "int64", "min": 1},
                {"name": "loss", "dtype": "float64", "max": -5},
                {"name": "smart", "dtype": "bool"},
                {"name": "y", "dtype": "bool"},
            ],
        }
    )
    body = to_parquet(make_rows(odd, 300, seed=0))
    report = validate_parquet(io.BytesIO(body), len(body), odd)
    assert report.ok, report.problems
