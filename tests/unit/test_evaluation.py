"""The deploy gate: floor, minimum improvement, and a paired bootstrap telling improvement from noise."""

from __future__ import annotations

import numpy as np
import pytest

from landfall.core.pipeline_settings import DeploySettings
from landfall.pipeline.evaluation import Scored, bootstrap_differences, decide, lower_bound

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
    decision = decide(new, baseline, bound, GATE)
    assert decision.should_deploy is deploy, decision.reason
    assert decision.reason


def test_the_decision_reports_scores_improvement_and_bound():
    decision = decide(0.97, 0.95, 0.01, GATE)
    assert (decision.new_score, decision.baseline_score, decision.improvement, decision.lower_bound) == (
        0.97,
        0.95,
        0.02,
        0.01,
    )
    assert decide(0.95, None, None, GATE).baseline_score == 0.0


def _models(rows: int, candidate_accuracy: float, champion_accuracy: float, seed: int = 0):
    """Truth and two models' answers with the given accuracies, wrong on independent rows."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, rows)

    def answers(accuracy: float) -> Scored:
        wrong = rng.random(rows) > accuracy
        predicted = np.where(wrong, 1 - truth, truth)
        return Scored(predicted, np.where(predicted == 1, 0.8, 0.2))

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
        return Scored(predicted, predicted * 0.6 + 0.2)

    candidate, champion = answers(candidate_wrong), answers(champion_wrong)
    bound = lower_bound(truth, candidate, champion, "accuracy", GATE)
    assert bound < 0
    decision = decide(0.95, 0.94, bound, GATE)
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
    for metric in ("accuracy", "f1", "roc_auc"):
        first = bootstrap_differences(truth, candidate, champion, metric, 200)
        assert np.array_equal(first, bootstrap_differences(truth, candidate, champion, metric, 200))
        assert first.mean() > 0, metric
