from __future__ import annotations

import pytest

from landfall.core.pipeline_settings import TrialGrid
from landfall.pipeline.training.trials import NoSuccessfulTrial, select_best, trial_grid


def test_the_grid_is_the_cross_product_in_a_stable_order():
    grid = TrialGrid(
        learning_rate=[0.1, 0.01], batch_size=[32, 64, 128], optimizer=["adam", "sgd"], hidden_units=[8]
    ).model_dump()
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


def test_a_grid_over_any_estimator_parameters_and_an_empty_one():
    trials = trial_grid({"max_depth": [3, None], "loss": ["squared_error"]})
    assert [t["trial"] for t in trials] == [
        "max_depth=3-loss=squared_error",
        "max_depth=None-loss=squared_error",
    ]
    assert trial_grid({}) == [{"trial": "defaults"}]  # one trial of the estimator's own defaults


def test_for_a_lower_is_better_metric_the_lowest_wins():
    results = [{"run_id": r, "metrics": {"rmse": v}} for r, v in (("a", 3.0), ("b", 1.5), ("c", 2.0))]
    assert select_best(results, "rmse")["run_id"] == "b"


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
    from landfall.pipeline.training.trainer import REFUSED_TAG

    label = settings.landing.label
    frame = make_batch(300, seed=3)
    frame[label] = 1
    parts = split(frame, settings.landing, 0.2, 0.2)
    uris = {}
    for name in ("train", "validation"):
        uris[name] = str(tmp_path / f"{name}.parquet")
        parts[name].to_parquet(uris[name], index=False)
    result = _small_trial(uris, label, "landfall-one-class-test")
    assert result["classes"] == 1 and "1 label class(es) [1]" in result["refused"]
    assert "model_uri" not in result and result["metrics"] == {}
    run = mlflow.get_run(result["run_id"])
    assert run.data.tags[REFUSED_TAG] == result["refused"] and run.data.params["train_classes"] == "1"
    assert not mlflow.artifacts.list_artifacts(run_id=result["run_id"], artifact_path="model")
    with pytest.raises(NoSuccessfulTrial, match="1 label class"):
        select_best([result], "accuracy")


def _small_trial(uris: dict, label: str, experiment: str, **options) -> dict:
    """One small MLP trial on the written splits, through the trainer's own entry point."""
    from landfall.pipeline.training.trainer import train_trial

    params = {"learning_rate": 0.01, "batch_size": 32, "optimizer": "adam", "hidden_units": 4, "trial": "t"}
    return train_trial(
        [uris["train"]],
        [uris["validation"]],
        params,
        "2026-01-02",
        trainer="mlp",
        label=label,
        max_epochs=3,
        experiment=experiment,
        **options,
    )


def _write_splits(settings, tmp_path, train_frame):
    from landfall.pipeline.datagen import make_batch
    from landfall.pipeline.features import split

    validation = split(make_batch(300, seed=5), settings.landing, 0.2, 0.2)["validation"]
    uris = {"train": str(tmp_path / "train.parquet"), "validation": str(tmp_path / "validation.parquet")}
    train_frame.to_parquet(uris["train"], index=False)
    validation.to_parquet(uris["validation"], index=False)
    return uris


def test_the_trainer_counts_classes_on_the_whole_train_split_not_its_strided_sample(
    local_mlflow, settings, tmp_path
):
    """Rare positives that all fall between the strides: the day holds two classes, so the trial is not
    refused as one-class, and it is fitted on two (the sample gets the missed class's strided rows)."""
    import mlflow

    from landfall.pipeline.datagen import make_batch
    from landfall.pipeline.features import split
    from landfall.pipeline.training.trainer import REFUSED_TAG

    label = settings.landing.label
    train = split(make_batch(400, seed=3), settings.landing, 0.2, 0.2)["train"].reset_index(drop=True)
    train[label] = 0
    train.loc[[1, 3, 5, 7, 9, 11], label] = 1  # only odd rows: every 2nd row from 0 holds none
    uris = _write_splits(settings, tmp_path, train)
    result = _small_trial(uris, label, "landfall-rare-class-test", train_every=2)
    assert "refused" not in result and result["classes"] == 2 and result["metrics"]
    run = mlflow.get_run(result["run_id"])
    assert REFUSED_TAG not in run.data.tags and run.data.params["train_classes"] == "2"
    # The missed class's own every-2nd rows (3 of 6), after the strided rows.
    assert run.data.params["train_rows_added_for_missed_classes"] == "3"
    assert run.data.params["train_rows"] == str(len(range(0, len(train), 2)) + 3)
    assert select_best([result], "accuracy")["run_id"] == result["run_id"]


def test_read_train_counts_the_whole_splits_classes_reading_each_s3_file_once(
    settings, tmp_path, monkeypatch
):
    import shutil

    from landfall.pipeline import window as window_io
    from landfall.pipeline.datagen import make_batch
    from landfall.pipeline.training.trainer import read_train

    label = settings.landing.label
    stored = {}
    for index, positives in enumerate(([], [3]), start=1):  # the second file's one positive: row 3
        frame = make_batch(10, seed=index)
        frame[label] = 0
        frame.loc[positives, label] = 1
        stored[f"s3://datasets/train-{index}.parquet"] = path = tmp_path / f"stored-{index}.parquet"
        frame.to_parquet(path, index=False)
    fetched = []

    def fetch(uri, path):
        fetched.append(uri)
        shutil.copy(stored[uri], path)

    monkeypatch.setattr(window_io, "_fetch_s3", fetch)
    uris = list(stored)
    sample, classes, added = read_train(uris, 4, label)  # rows 0, 4, 8, 12, 16 of 20: no positive
    assert classes == [0, 1] and added == 1 and sorted(sample[label].tolist()) == [0] * 5 + [1]
    assert fetched == uris + uris  # the counting pass rides on the sample's; the missed class reads again
    fetched.clear()
    sample, classes, added = read_train(uris, 13, label)  # rows 0 and 13: the sample holds the positive
    assert classes == [0, 1] and added == 0 and sample[label].tolist() == [0, 1]
    assert fetched == uris  # each file fetched once: the classes were counted as the sample read it
