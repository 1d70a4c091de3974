from __future__ import annotations

import pytest

from landfall.core.settings import TrialGrid
from landfall.pipeline.training.trials import NoSuccessfulTrial, select_best, trial_grid


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
