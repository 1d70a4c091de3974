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


def test_a_trial_fitted_on_one_class_is_never_a_candidate_and_the_refusal_names_the_class_count():
    one_class = {"run_id": "z", "metrics": {"accuracy": 1.0}, "classes": 1, "refused": "1 label class [0]"}
    assert select_best([one_class, _result("a", 0.7)], "accuracy")["run_id"] == "a"
    with pytest.raises(NoSuccessfulTrial, match=r"1 label class.*never a candidate"):
        select_best([one_class, None, {**one_class, "run_id": "y", "metrics": {}}], "accuracy")


def test_the_trainer_does_not_fit_a_split_of_one_class_and_says_how_many_classes_it_had(
    local_mlflow, settings, tmp_path
):
    import mlflow

    from landfall.pipeline.datagen import make_batch
    from landfall.pipeline.features import split
    from landfall.pipeline.training.trainer import REFUSED_TAG, train_trial

    label = settings.landing.label
    frame = make_batch(300, seed=3)
    frame[label] = 1
    parts = split(frame, settings.landing, 0.2, 0.2)
    uris = {}
    for name in ("train", "validation"):
        uris[name] = str(tmp_path / f"{name}.parquet")
        parts[name].to_parquet(uris[name], index=False)
    params = {"learning_rate": 0.01, "batch_size": 32, "optimizer": "adam", "hidden_units": 4, "trial": "t"}
    result = train_trial(
        [uris["train"]],
        [uris["validation"]],
        params,
        "2026-01-02",
        model_kind="mlp",
        label=label,
        max_epochs=3,
        experiment="landfall-one-class-test",
    )
    assert result["classes"] == 1 and "1 label class(es) [1]" in result["refused"]
    assert "model_uri" not in result and result["metrics"] == {}
    run = mlflow.get_run(result["run_id"])
    assert run.data.tags[REFUSED_TAG] == result["refused"] and run.data.params["train_classes"] == "1"
    assert not mlflow.artifacts.list_artifacts(run_id=result["run_id"], artifact_path="model")
    with pytest.raises(NoSuccessfulTrial, match="1 label class"):
        select_best([result], "accuracy")
