"""Drift figures on known distributions, the streamed statistics against a whole-frame computation, the
verdicts (never `stable` when a figure cannot be computed) and the retraining policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from landfall.core.pipeline_settings import MonitoringSettings
from landfall.core.settings import get_settings
from landfall.pipeline import drift
from landfall.pipeline.datagen import make_batch

MONITORING = MonitoringSettings()


@pytest.fixture(scope="module")
def churn():
    return get_settings().landing


def _summary(frame: pd.DataFrame, landing, chunk: int | None = None, seed: int = 0) -> dict:
    chunks = [frame] if chunk is None else [frame[i : i + chunk] for i in range(0, len(frame), chunk)]
    return drift.summarise(chunks, landing, "binary", seed)


def test_psi_is_zero_for_the_same_shares_and_matches_its_formula_otherwise():
    assert drift.psi(np.array([0.2, 0.3, 0.5]), np.array([0.2, 0.3, 0.5])) == pytest.approx(0.0)
    by_hand = 0.2 * np.log(0.7 / 0.5) + (-0.2) * np.log(0.3 / 0.5)
    assert drift.psi(np.array([0.5, 0.5]), np.array([0.7, 0.3])) == pytest.approx(by_hand)
    assert np.isfinite(drift.psi(np.array([0.5, 0.5]), np.array([1.0, 0.0])))  # an emptied bin stays finite


def test_a_shifted_normal_drifts_and_another_sample_of_the_same_one_does_not():
    rng = np.random.default_rng(1)

    def summary(values: np.ndarray) -> drift.NumericSummary:
        summary = drift.NumericSummary()
        summary.add(values, np.random.default_rng(0))
        return summary

    reference = summary(rng.normal(0, 1, 20_000))
    same = drift.numeric_drift(reference, summary(rng.normal(0, 1, 20_000)))
    shifted = drift.numeric_drift(reference, summary(rng.normal(1, 1, 20_000)))
    assert same["psi"] < 0.02 and same["ks"] < 0.03
    assert shifted["psi"] > 0.5 and shifted["ks"] == pytest.approx(0.383, abs=0.03)  # 2 * Phi(0.5) - 1
    assert shifted["mean"][1] == pytest.approx(1.0, abs=0.05)


def test_streamed_statistics_equal_the_whole_frames_and_the_sample_stays_bounded(churn):
    small = make_batch(3000, seed=4)
    small.loc[small.index[::7], "usage_hours"] = np.nan
    whole, streamed = _summary(small, churn), _summary(small, churn, chunk=250)
    for name, body in whole["features"].items():
        other = streamed["features"][name]
        assert (body["rows"], body["missing"]) == (other["rows"], other["missing"]), name
        if body["kind"] == "numeric":
            assert body["mean"] == pytest.approx(other["mean"]) and sorted(body["sample"]) == sorted(
                other["sample"]
            )
        else:
            assert body["counts"] == other["counts"]
    assert whole["features"]["usage_hours"]["missing"] == len(small.index[::7])
    assert whole["label"]["counts"] == {str(k): int(v) for k, v in small["churned"].value_counts().items()}

    big = make_batch(60_000, seed=5)
    sketch = _summary(big, churn, chunk=4096)["features"]["monthly_spend"]
    assert len(sketch["sample"]) == drift.SAMPLE and sketch["rows"] == 60_000
    deciles = np.linspace(0.1, 0.9, 9)
    spread = big["monthly_spend"].quantile(0.95) - big["monthly_spend"].quantile(0.05)
    error = np.abs(np.quantile(sketch["sample"], deciles) - big["monthly_spend"].quantile(deciles).to_numpy())
    assert (error / spread).max() < 0.03  # the reservoir's deciles are the column's, to within 3 %


def test_a_day_like_the_reference_is_stable_and_a_drifted_one_names_its_features(churn):
    reference = _summary(make_batch(8000, seed=1), churn)
    stable = drift.compare(reference, _summary(make_batch(8000, seed=2), churn), churn, MONITORING)
    assert stable.verdict == "stable" and stable.drifted == [], stable.reason
    moved = drift.compare(reference, _summary(make_batch(8000, seed=3, drift=1.0), churn), churn, MONITORING)
    assert moved.verdict == "drifted", moved.reason
    assert moved.drifted and all(
        moved.features[name]["psi"] >= MONITORING.psi_threshold for name in moved.drifted
    )
    assert moved.reason.startswith(f"{len(moved.drifted)} of {len(moved.features)} features drifted")
    assert moved.label is not None and "psi" in moved.label  # the label's class shares are compared too
    assert set(moved.as_dict()) >= {"verdict", "drifted", "problems", "features", "label", "reason"}


def test_a_figure_that_cannot_be_computed_is_reported_and_never_reads_stable(churn):
    reference = _summary(make_batch(4000, seed=1), churn)
    day = make_batch(4000, seed=2)
    day["usage_hours"] = np.nan
    report = drift.compare(reference, _summary(day, churn), churn, MONITORING)
    assert report.problems == {"usage_hours": "every value is missing in the day"}
    assert report.verdict == "unknown" and "usage_hours" in report.reason
    day = make_batch(4000, seed=2)
    day["contract_type"] = day["contract_type"].where(day.index % 2 == 0, "weekly")
    report = drift.compare(reference, _summary(day, churn), churn, MONITORING)
    assert report.problems["contract_type"] == "categories not in `allowed`: weekly"
    assert report.verdict in ("unknown", "drifted")


def test_with_no_champion_there_is_no_reference_and_nothing_drifts(churn):
    report = drift.compare(None, _summary(make_batch(500, seed=1), churn), churn, MONITORING)
    assert report.verdict == "no reference" and report.drifted == [] and "no champion" in report.reason


NOW = datetime(2026, 12, 7, tzinfo=UTC)
STABLE = {"verdict": "stable", "reason": "0 of 7 features drifted"}


@pytest.mark.parametrize(
    ("retrain", "report", "trained_days_ago", "train", "alert", "says"),
    [
        ("every_landing", STABLE, 1, True, False, "every_landing"),
        ("on_drift", STABLE, 1, False, False, "no drift"),
        ("on_drift", {"verdict": "drifted", "reason": "2 of 7"}, 1, True, False, "drift drifted"),
        ("on_drift", {"verdict": "unknown", "reason": "x"}, 1, True, False, "drift unknown"),
        ("on_drift", None, 1, True, True, "no drift report"),
        ("on_drift", STABLE, None, True, False, "no champion"),
        ("on_drift", STABLE, 31, True, False, "last trained 31.0 days ago"),
    ],
)
def test_the_retraining_policy(retrain, report, trained_days_ago, train, alert, says):
    trained_at = None if trained_days_ago is None else NOW - timedelta(days=trained_days_ago)
    decision = drift.training_decision(retrain, report, trained_at, NOW, max_age_days=30)
    assert (decision.train, decision.alert) == (train, alert) and says in decision.reason


def test_the_monitoring_keys_have_bounds():
    with pytest.raises(ValueError, match="share_of_features"):
        MonitoringSettings(share_of_features=1.5)
    with pytest.raises(ValueError, match="psi_threshold"):
        MonitoringSettings(psi_threshold=0)


def test_days_merged_into_a_window_keep_their_counts_and_a_sample_of_every_day(churn):
    days = [make_batch(3000, seed=seed) for seed in (1, 2, 3)]
    summaries = [_summary(day, churn) for day in days]
    window = drift.merged(summaries)
    whole = _summary(pd.concat(days, ignore_index=True), churn)
    for name, body in whole["features"].items():
        merged = window["features"][name]
        assert (merged["rows"], merged["missing"]) == (body["rows"], body["missing"]), name
        if body["kind"] == "numeric":
            assert merged["mean"] == pytest.approx(body["mean"]) and len(merged["sample"]) <= drift.SAMPLE
        else:
            assert merged["counts"] == body["counts"]
    assert window["label"]["counts"] == whole["label"]["counts"]
    # A window merged from its days compares with a day as the whole window does.
    day = _summary(make_batch(3000, seed=9, drift=1.0), churn)
    assert (
        drift.compare(window, day, churn, MONITORING).drifted
        == drift.compare(whole, day, churn, MONITORING).drifted
    )


def test_the_reference_leaves_out_days_without_statistics_and_is_none_without_any(churn):
    day = _summary(make_batch(500, seed=1), churn)
    reference = drift.reference_of([day, None, {"error": "KeyError: 'x'"}, day])
    assert (reference["days"], reference["days_left_out"]) == (2, 2)
    assert reference["features"]["tenure_months"]["rows"] == 1000
    assert drift.reference_of([None]) is None
