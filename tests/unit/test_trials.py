from __future__ import annotations

import pytest

from landfall.settings import DeploySettings, TrialGrid
from landfall.trials import NoSuccessfulTrial, decide, select_best, trial_grid


def test_the_grid_is_the_cross_product_in_a_stable_order():
    grid = TrialGrid(
        learning_rate=[0.1, 0.01], batch_size=[32, 64, 128], optimizer=["adam", "sgd"], hidden_units=[8]
    )
    trials = trial_grid(grid)
    assert len(trials) == 2 * 3 * 2
    assert trials == trial_grid(grid)
    assert len({t["trial"] for t in trials}) == len(trials)
    assert trials[0] == {
        "learning_rate": 0.1,
        "batch_size": 32,
        "optimizer": "adam",
        "hidden_units": 8,
        "trial": "learning_rate=0.1-batch_size=32-optimizer=adam-hidden_units=8",
    }


def _result(run_id, accuracy):
    return {"run_id": run_id, "metrics": {"accuracy": accuracy}}


def test_the_best_trial_wins_and_failed_trials_are_ignored():
    results = [
        _result("a", 0.91),
        None,
        _result("b", 0.95),
        {"run_id": "c", "metrics": {}},
        _result("d", 0.93),
    ]
    assert select_best(results, "accuracy")["run_id"] == "b"


def test_ties_go_to_the_same_trial_every_time():
    assert select_best([_result("b", 0.9), _result("a", 0.9)], "accuracy")["run_id"] == "a"
    assert select_best([_result("a", 0.9), _result("b", 0.9)], "accuracy")["run_id"] == "a"


def test_all_trials_failed_is_a_clear_error():
    with pytest.raises(NoSuccessfulTrial, match="no trial finished"):
        select_best([None, None], "accuracy")


GATE = DeploySettings(min_score=0.90, min_improvement=0.005)


@pytest.mark.parametrize(
    ("new", "baseline", "deploy"),
    [
        (0.95, None, True),  # first model, above the floor
        (0.90, None, False),  # exactly the floor is not above it
        (0.9001, None, True),
        (0.89, None, False),
        (0.955, 0.95, False),  # improvement exactly the margin is not above it
        (0.9551, 0.95, True),
        (0.96, 0.97, False),  # worse than the champion
        (0.95, 0.95, False),  # the same model again
    ],
)
def test_the_gate_needs_the_floor_and_the_margin(new, baseline, deploy):
    decision = decide(new, baseline, GATE)
    assert decision.should_deploy is deploy
    assert decision.reason


def test_the_decision_reports_scores_and_improvement():
    decision = decide(0.97, 0.95, GATE)
    assert (decision.new_score, decision.baseline_score, decision.improvement) == (0.97, 0.95, 0.02)
    assert decide(0.95, None, GATE).baseline_score == 0.0
