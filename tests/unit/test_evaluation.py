"""The deploy gate: floor, minimum improvement, and a paired bootstrap telling improvement from noise, in
the metric's direction; a first model must beat one that learned nothing."""

from __future__ import annotations

import numpy as np
import pytest

from landfall.core.pipeline_settings import DeploySettings
from landfall.pipeline.evaluation import bootstrap_differences, decide, lower_bound
from landfall.pipeline.metrics import Answers

GATE = DeploySettings(min_score=0.90, min_improvement=0.005, confidence=0.95, bootstrap_samples=1000)


@pytest.mark.parametrize(
    ("new", "baseline", "bound", "deploy"),
    [
        (0.95, None, None, True),  # first model, above the floor
        (0.90, None, None, False),  # exactly the floor is not above it
        (0.89, None, None, False),
        (0.955, 0.95, 0.002, False),  # improvement exactly the margin is not above it
        (0.9551, 0.95, 0.001, True),
        (0.97, 0.95, -0.003, False),  # a bigger improvement that could still be noise
        (0.97, 0.95, None, False),  # no interval, no deploy (fail closed)
        (0.96, 0.97, -0.02, False),  # worse than the champion
        (0.95, 0.95, 0.0, False),  # the same model again
    ],
)
def test_the_gate_needs_the_floor_the_margin_and_a_significant_improvement(new, baseline, bound, deploy):
    decision = decide("accuracy", new, baseline, bound, GATE)
    assert decision.should_deploy is deploy, decision.reason
    assert decision.reason


REGRESSION_GATE = DeploySettings(min_score=None, min_improvement=0.5, confidence=0.95, bootstrap_samples=1000)


@pytest.mark.parametrize(
    ("new", "champion", "bound", "deploy"),
    [
        (9.0, 10.0, 0.4, True),  # rmse 1.0 lower, more than the margin of 0.5, bound above zero
        (11.0, 10.0, 0.4, False),  # a worse rmse is never an improvement, whatever the bound says
        (9.6, 10.0, 0.1, False),  # 0.4 lower: not more than the margin
        (9.0, 10.0, -0.1, False),  # could be noise
    ],
)
def test_a_lower_is_better_metric_is_gated_in_its_own_direction(new, champion, bound, deploy):
    decision = decide("rmse", new, champion, bound, REGRESSION_GATE)
    assert decision.should_deploy is deploy, decision.reason
    if deploy:
        assert decision.improvement == pytest.approx(champion - new)


def test_a_ceiling_for_a_lower_is_better_metric_refuses_a_score_above_it():
    ceiling = REGRESSION_GATE.model_copy(update={"min_score": 5.0})
    assert not decide("rmse", 6.0, None, None, ceiling).should_deploy
    assert "not below deploy.min_score" in decide("rmse", 6.0, None, None, ceiling).reason
    assert decide("rmse", 4.0, None, None, ceiling, trivial_score=9.0).should_deploy


@pytest.mark.parametrize(
    ("metric", "new", "trivial", "deploy"),
    [
        ("accuracy", 0.95, 0.60, True),  # learned something
        ("accuracy", 0.95, 0.95, False),  # the majority class scores as much: a one-class day, say
        ("accuracy", 0.953, 0.95, False),  # not by more than the margin
        ("rmse", 2.0, 10.0, True),
        ("rmse", 9.8, 10.0, False),  # the training mean is almost as good
    ],
)
def test_a_first_model_must_beat_a_model_that_learned_nothing(metric, new, trivial, deploy):
    gate = GATE if metric == "accuracy" else REGRESSION_GATE
    decision = decide(metric, new, None, None, gate, trivial_score=trivial)
    assert decision.should_deploy is deploy, decision.reason
    if not deploy:
        assert "learned nothing" in decision.reason or "min_score" in decision.reason


def test_a_comparison_that_is_not_finite_never_deploys():
    inf = float("inf")
    assert not decide("log_loss", inf, inf, 1.0, REGRESSION_GATE).should_deploy  # inf - inf is NaN
    assert not decide("rmse", float("nan"), None, None, REGRESSION_GATE, trivial_score=5.0).should_deploy


def test_the_decision_reports_scores_improvement_and_bound():
    decision = decide("accuracy", 0.97, 0.95, 0.01, GATE)
    assert (decision.new_score, decision.baseline_score, decision.improvement, decision.lower_bound) == (
        0.97,
        0.95,
        0.02,
        0.01,
    )
    assert decide("accuracy", 0.95, None, None, GATE).baseline_score == 0.0
    assert decide("accuracy", 0.95, None, None, GATE, trivial_score=0.6).baseline_score == 0.6


def _models(rows: int, candidate_accuracy: float, champion_accuracy: float, seed: int = 0):
    """Truth and two models' answers with the given accuracies, wrong on independent rows."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, rows)

    def answers(accuracy: float) -> Answers:
        wrong = rng.random(rows) > accuracy
        predicted = np.where(wrong, 1 - truth, truth)
        positive = np.where(predicted == 1, 0.8, 0.2)
        return Answers(predicted, np.column_stack([1 - positive, positive]), (0, 1))

    return truth, answers(candidate_accuracy), answers(champion_accuracy)


def test_a_clear_improvement_has_a_positive_lower_bound():
    truth, candidate, champion = _models(5000, 0.96, 0.92)
    assert lower_bound(truth, candidate, champion, "accuracy", GATE) > 0.02


def test_one_percent_on_a_thousand_rows_can_be_noise():
    """The issue's case: ~1,000 held-out rows, an improvement twice min_improvement that is still within
    the sampling error: the champion errs on 60 rows, the candidate on 50 (40 and 30 of them its own)."""
    truth = np.ones(1000, dtype=int)
    champion_wrong, candidate_wrong = np.zeros(1000, bool), np.zeros(1000, bool)
    champion_wrong[:60], candidate_wrong[40:90] = True, True

    def answers(wrong):
        predicted = np.where(wrong, 0, 1)
        positive = predicted * 0.6 + 0.2
        return Answers(predicted, np.column_stack([1 - positive, positive]), (0, 1))

    candidate, champion = answers(candidate_wrong), answers(champion_wrong)
    bound = lower_bound(truth, candidate, champion, "accuracy", GATE)
    assert bound < 0
    decision = decide("accuracy", 0.95, 0.94, bound, GATE)
    assert not decision.should_deploy and "sampling noise" in decision.reason
    # Ten times the rows, the same error rates: now it is an improvement.
    big = np.tile(np.arange(1000), 10)
    assert (
        lower_bound(truth[big], answers(candidate_wrong[big]), answers(champion_wrong[big]), "accuracy", GATE)
        > 0
    )


def test_the_same_model_twice_never_passes():
    truth, candidate, _ = _models(2000, 0.95, 0.95)
    assert lower_bound(truth, candidate, candidate, "accuracy", GATE) == 0.0


def test_the_bootstrap_is_deterministic_and_works_for_every_metric():
    truth, candidate, champion = _models(800, 0.95, 0.9)
    for metric in ("accuracy", "f1", "f1_macro", "roc_auc", "log_loss"):
        first = bootstrap_differences(truth, candidate, champion, metric, 200)
        assert np.array_equal(first, bootstrap_differences(truth, candidate, champion, metric, 200))
        assert first.mean() > 0, metric


def test_the_regression_bootstrap_counts_a_smaller_error_as_better():
    rng = np.random.default_rng(3)
    truth = rng.normal(50.0, 10.0, 2000)
    close, far = Answers(truth + rng.normal(0, 1.0, 2000)), Answers(truth + rng.normal(0, 3.0, 2000))
    for metric in ("rmse", "mae", "r2"):
        differences = bootstrap_differences(truth, close, far, metric, 300)
        assert np.percentile(differences, 5) > 0, metric  # the closer model is better, in every direction
        assert np.percentile(bootstrap_differences(truth, far, close, metric, 300), 95) < 0, metric


def test_the_vectorised_resamples_equal_the_metric_on_each_resample():
    """The fast path (means of per-row terms) and the metric itself agree, resample by resample."""
    from landfall.pipeline.metrics import METRICS

    rng = np.random.default_rng(5)
    truth = rng.normal(0.0, 1.0, 300)
    ours, theirs = Answers(truth + rng.normal(0, 0.5, 300)), Answers(truth + rng.normal(0, 0.8, 300))
    fast = bootstrap_differences(truth, ours, theirs, "rmse", 20, seed=9)
    index = np.random.default_rng(9).integers(0, 300, (20, 300))
    rmse = METRICS["rmse"]
    slow = [
        rmse.better(rmse.compute(truth[i], ours.take(i)), rmse.compute(truth[i], theirs.take(i)))
        for i in index
    ]
    assert np.allclose(fast, slow)


def test_deploy_applies_the_gate_again_from_config_against_the_champion_or_the_trivial_score(settings):
    """Deploy trusts only the scores in the evaluation, never its verdict: the same rules, from config."""
    from landfall.airflow.tasks.deploy import gate

    first = {"metric": "accuracy", "new_score": 0.95, "baseline_score": 0.948, "lower_bound": None}
    assert not gate("churn", {**first, "champion_version": None})  # barely above a model that learned nothing
    assert gate("churn", {**first, "champion_version": None, "baseline_score": 0.6})
    assert not gate("churn", {**first, "champion_version": None, "baseline_score": 0.6, "metric": "f1"})
    noisy = {**first, "champion_version": "3", "baseline_score": 0.9, "lower_bound": -0.01}
    assert not gate("churn", noisy) and gate("churn", {**noisy, "lower_bound": 0.01})


def test_a_champion_of_other_features_is_never_compared_and_never_taken_for_no_champion():
    """After a pipeline's features function changed, its champion cannot answer the candidate's rows:
    the evaluation fails saying so (and how to go on), it neither crashes on the columns nor promotes."""
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException

    from landfall.airflow.tasks.evaluate import _champion_answers

    tags = {"cand": {"landfall.features": "python:m:f@new"}, "champ": {"landfall.features": "python:m:f@old"}}
    client = SimpleNamespace(get_run=lambda run_id: SimpleNamespace(data=SimpleNamespace(tags=tags[run_id])))
    champion = SimpleNamespace(run_id="champ", version="4")
    with pytest.raises(
        AirflowFailException, match=r"v4 cannot be compared.*python:m:f@old.*delete_registered"
    ):
        _champion_answers(client, champion, object(), {"run_id": "cand"}, None, "y", "binary")
