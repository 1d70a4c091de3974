from __future__ import annotations

from landfall.pipeline.datagen import make_batch
from landfall.pipeline.features import build_features, split, split_of


def test_features_have_the_same_columns_whatever_categories_a_day_contains(settings):
    full = build_features(make_batch(300, seed=1), settings.landing)
    only_monthly = make_batch(300, seed=1)
    only_monthly["contract_type"] = "monthly"
    assert list(build_features(only_monthly, settings.landing).columns) == list(full.columns)
    assert "customer_id" not in full.columns and settings.landing.label not in full.columns
    assert full.notna().all().all()


def test_the_split_is_deterministic_and_independent_of_row_order(settings):
    frame = make_batch(2000, seed=3)
    first = split(frame, settings.landing, 0.2, 0.2)
    again = split(frame.sample(frac=1, random_state=9), settings.landing, 0.2, 0.2)
    key = ["tenure_months", "monthly_spend", "usage_hours"]
    for name in ("train", "validation", "test"):
        a = first[name].sort_values(key).reset_index(drop=True)
        b = again[name].sort_values(key).reset_index(drop=True)
        assert a.equals(b), name


def test_three_disjoint_splits_of_about_the_configured_sizes(settings):
    frame = make_batch(5000, seed=4)
    parts = split(frame, settings.landing, 0.2, 0.2)
    sizes = {name: len(part) for name, part in parts.items()}
    assert sum(sizes.values()) == 5000
    assert 0.17 < sizes["test"] / 5000 < 0.23 and 0.17 < sizes["validation"] / 5000 < 0.23
    assert all(settings.landing.label in part.columns for part in parts.values())


def test_a_row_is_in_the_same_split_whichever_day_or_file_it_comes_in(settings):
    ids = make_batch(3000, seed=6)["customer_id"]
    assert (split_of(ids, 0.2, 0.2) == split_of(ids.iloc[::-1], 0.2, 0.2)[::-1]).all()
    assert set(split_of(ids[:10], 0.2, 0.2)) <= {"train", "validation", "test"}
