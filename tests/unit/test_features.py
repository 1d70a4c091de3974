from __future__ import annotations

from landfall.datagen import make_batch
from landfall.features import build_features, split


def test_features_have_the_same_columns_whatever_categories_a_day_contains(settings):
    full = build_features(make_batch(300, seed=1), settings.landing)
    only_monthly = make_batch(300, seed=1)
    only_monthly["contract_type"] = "monthly"
    assert list(build_features(only_monthly, settings.landing).columns) == list(full.columns)
    assert "customer_id" not in full.columns and settings.landing.label not in full.columns
    assert full.notna().all().all()


def test_the_split_is_deterministic_and_independent_of_row_order(settings):
    frame = make_batch(2000, seed=3)
    train_a, test_a = split(frame, settings.landing, 0.2)
    train_b, test_b = split(frame.sample(frac=1, random_state=9), settings.landing, 0.2)
    key = ["tenure_months", "monthly_spend", "usage_hours"]
    assert (
        test_a.sort_values(key).reset_index(drop=True).equals(test_b.sort_values(key).reset_index(drop=True))
    )
    assert len(train_a) == len(train_b)


def test_the_split_holds_out_about_the_configured_fraction(settings):
    train, test = split(make_batch(5000, seed=4), settings.landing, 0.2)
    assert 0.17 < len(test) / (len(train) + len(test)) < 0.23
    assert settings.landing.label in train.columns and settings.landing.label in test.columns
