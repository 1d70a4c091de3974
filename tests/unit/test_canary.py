"""The canary's rows are the held-out test rows in the order preprocess wrote them, so the offline
evaluation's predictions line up with the service's; the comparison fails on any difference beyond
floating-point noise, and on a slow service."""

from __future__ import annotations

import re
import time

import pandas as pd
import pytest

from landfall.pipeline.canary import TOLERANCE, as_rows, compare, run_canary, sample
from landfall.pipeline.datagen import make_batch
from landfall.pipeline.features import build_features, split


def test_the_canary_rows_are_the_head_of_the_test_split_as_clients_send_them(settings):
    raw = make_batch(2000, seed=4).sample(frac=1, random_state=1)  # the row order of the file is random
    rows = sample(raw, settings.landing, 0.2, 0.2, size=150)
    assert list(rows.columns) == settings.landing.feature_columns  # no label
    test = split(raw, settings.landing, 0.2, 0.2)["test"].drop(columns=[settings.landing.label])
    rebuilt = build_features(pd.DataFrame(as_rows(rows)), settings.landing)
    pd.testing.assert_frame_equal(rebuilt, test.head(150), check_dtype=True)


def test_rows_survive_json_exactly(settings):
    import json

    rows = sample(make_batch(500, seed=8), settings.landing, 0.2, 0.2, size=50)
    again = pd.DataFrame(json.loads(json.dumps(as_rows(rows))))
    pd.testing.assert_frame_equal(again, rows)


def _classes(*positives: float) -> list[dict[str, float]]:
    """Binary answers' probabilities as the service sends them: class -> probability per row."""
    return [{"0": 1.0 - p, "1": p} for p in positives]


EXPECTED = {"predictions": [1, 0, 1, 0], "probabilities": _classes(0.9, 0.2, 0.7, 0.4)}


def test_identical_answers_within_the_latency_bound_pass():
    report = compare(EXPECTED, dict(EXPECTED), [10.0, 12.0], max_latency_ms=50)
    assert report.passed and report.mismatched_predictions == 0


@pytest.mark.parametrize(
    ("answered", "why"),
    [
        (
            {"predictions": [1, 0, 0, 0], "probabilities": _classes(0.9, 0.2, 0.3, 0.4)},
            "differ .* on 1 of 4 rows",
        ),
        (
            {"predictions": [1, 0, 1, 0], "probabilities": _classes(0.9, 0.2, 0.7, 0.4 + 100 * TOLERANCE)},
            "differ",
        ),
        ({"predictions": [1, 0, 1], "probabilities": _classes(0.9, 0.2, 0.7)}, "3 predictions for 4 rows"),
        # The same numbers under other class names: not the same classifier.
        ({"predictions": [1, 0, 1, 0], "probabilities": [{"a": 0.1, "b": 0.9}] * 4}, "gap inf"),
        # An answer of the positive class's probability only (the format before per-class answers).
        ({"predictions": [1, 0, 1, 0], "probabilities": [0.9, 0.2, 0.7, 0.4]}, "gap inf"),
    ],
)
def test_any_difference_from_the_offline_evaluation_fails(answered, why):
    report = compare(EXPECTED, answered, [10.0], max_latency_ms=50)
    assert not report.passed
    assert re.search(why, report.reason)


def test_a_regression_canary_allows_the_configured_tolerance_and_no_more():
    expected = {"predictions": [10.0, 20.5, -3.25]}
    close = {"predictions": [10.0 + 4e-4, 20.5, -3.25 - 4e-4]}
    assert compare(expected, close, [10.0], max_latency_ms=50, tolerance=1e-3).passed
    far = compare(expected, close, [10.0], max_latency_ms=50, tolerance=1e-4)
    assert not far.passed and "on 2 of 3 rows" in far.reason and "prediction gap" in far.reason


def test_a_slow_service_fails_even_when_its_answers_are_right():
    report = compare(EXPECTED, dict(EXPECTED), [10.0] * 19 + [900.0, 900.0], max_latency_ms=500)
    assert not report.passed and "p95" in report.reason


def test_run_canary_asks_in_batches_and_puts_the_answers_back_in_order():
    asked = []

    def ask(rows):
        asked.append(len(rows))
        index = [row["i"] for row in rows]
        return {
            "predictions": [EXPECTED["predictions"][i] for i in index],
            "probabilities": [EXPECTED["probabilities"][i] for i in index],
        }

    report = run_canary([{"i": i} for i in range(4)], EXPECTED, ask, batches=3, max_latency_ms=1000)
    assert report.passed and sum(asked) == 4 and len(asked) == 3


def test_loading_on_another_replica_is_not_answering_time_but_another_run_answering_fails():
    expected = {**EXPECTED, "run_id": "a" * 32}

    def ask(rows, load_s=0.0, run_id=None):
        time.sleep(load_s)
        index = [row["i"] for row in rows]
        return {
            "predictions": [EXPECTED["predictions"][i] for i in index],
            "probabilities": [EXPECTED["probabilities"][i] for i in index],
            "run_id": run_id or expected["run_id"],
            "load_s": load_s,
        }

    rows = [{"i": i} for i in range(4)]
    # The first batch reached a replica that loaded the candidate for 0.3 s: within a 200 ms bound still.
    loaded_first = iter([0.3, 0.0])
    report = run_canary(rows, expected, lambda r: ask(r, next(loaded_first)), batches=2, max_latency_ms=200)
    assert report.passed, report.reason
    other = run_canary(rows, expected, lambda r: ask(r, run_id="f" * 32), batches=2, max_latency_ms=200)
    assert not other.passed and "not the candidate" in other.reason


def test_an_empty_sample_never_passes():
    report = run_canary([], EXPECTED, lambda rows: {}, batches=4, max_latency_ms=1000)
    assert not report.passed and "empty" in report.reason


def test_a_candidate_the_service_cannot_score_fails_the_canary_at_once():
    from landfall.serving.client import ModelFailed

    asked = []

    def ask(rows):
        asked.append(rows)
        raise ModelFailed("landfall-churn candidate run c could not score the rows: classes [0]")

    report = run_canary([{"i": i} for i in range(4)], EXPECTED, ask, batches=2, max_latency_ms=1000)
    assert not report.passed and len(asked) == 1
    assert "could not score the rows: classes [0]" in report.reason


def test_a_missing_value_travels_as_null_and_is_served_only_for_a_nullable_column():
    import json

    import numpy as np
    import yaml

    from landfall.core.pipeline_settings import LandingSettings
    from landfall.serving.slots import RowError, frame_of

    landing = LandingSettings.model_validate(
        yaml.safe_load(
            "id_column: i\nlabel: y\ncolumns: [{name: i, dtype: int64},"
            " {name: x, dtype: float64, nullable: true}, {name: z, dtype: float64}, {name: y, dtype: int64}]"
        )
    )
    rows = as_rows(pd.DataFrame({"i": [1, 2], "x": [0.5, np.nan], "z": [1.0, 2.0]}))
    assert rows[1]["x"] is None and json.loads(json.dumps(rows, allow_nan=False)) == rows
    frame = frame_of(rows, landing)
    assert frame["x"].isna().tolist() == [False, True] and frame["x"].dtype == "float64"
    with pytest.raises(RowError) as refused:
        frame_of([{**rows[0], "z": None}], landing)
    assert refused.value.problems == [{"row": 0, "column": "z", "problem": "missing"}]
