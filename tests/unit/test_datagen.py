from __future__ import annotations

import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split

from landfall.pipeline.datagen import make_batch


def _accuracy(frame: pd.DataFrame) -> float:
    features = pd.get_dummies(frame.drop(columns=["churned", "customer_id"]))
    x_train, x_test, y_train, y_test = train_test_split(features, frame["churned"], random_state=0)
    return HistGradientBoostingClassifier(random_state=0).fit(x_train, y_train).score(x_test, y_test)


def test_a_good_model_learns_the_daily_batch_well_above_90_percent():
    assert _accuracy(make_batch(4000, seed=7)) > 0.92


def test_the_same_seed_gives_the_same_batch_and_another_seed_does_not():
    assert make_batch(200, seed=1).equals(make_batch(200, seed=1))
    assert not make_batch(200, seed=1).equals(make_batch(200, seed=2))


def test_drift_shifts_the_population():
    reference, drifted = make_batch(5000, seed=1), make_batch(5000, seed=1, drift=1.0)
    assert drifted["support_calls"].mean() > reference["support_calls"].mean() + 1
    assert drifted["churned"].mean() > reference["churned"].mean() + 0.2
