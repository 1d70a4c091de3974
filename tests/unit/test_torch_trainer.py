"""The optional PyTorch trainer (`pip install 'landfall[torch]'`): learns the churn task, honours the grid's
optimizer, learning rate and batch size, and round-trips through MLflow as a classifier evaluate can use
(rebuilt from its weights and description by Landfall's own loader, never through the pickled pyfunc).

Skipped where PyTorch is not installed (it is an extra, not a default dependency)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from landfall.pipeline.datagen import make_batch
from landfall.pipeline.features import split

torch = pytest.importorskip("torch")
torch_trainer = pytest.importorskip("landfall.pipeline.training.torch_trainer")

PARAMS = {"learning_rate": 0.01, "batch_size": 64, "optimizer": "adam", "hidden_units": 32}


@pytest.fixture(scope="module")
def data(settings):
    """{"train", "validation", "test"}: features plus the label, as the trainer reads them."""
    training = settings.training
    return split(
        make_batch(2000, seed=3), settings.landing, training.validation_fraction, training.test_fraction
    )


def _accuracy(model, frame, label):
    return float((model.predict(frame.drop(columns=[label])) == frame[label].to_numpy()).mean())


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_each_optimizer_learns_the_churn_task(data, settings, optimizer):
    train, test = data["train"], data["validation"]
    model = torch_trainer.fit(
        train, settings.landing.label, {**PARAMS, "optimizer": optimizer}, max_epochs=15
    )
    assert _accuracy(model, test, settings.landing.label) > 0.85
    probability = model.predict_proba(test.drop(columns=[settings.landing.label]))
    assert probability.shape == (len(test), 2) and np.allclose(probability.sum(axis=1), 1)


def test_batch_size_sets_the_optimizer_steps_per_epoch(data, settings, monkeypatch):
    train = data["train"]
    steps = []
    original = torch.optim.Adam.step
    monkeypatch.setattr(
        torch.optim.Adam, "step", lambda self, *a, **k: (steps.append(1), original(self, *a, **k))
    )
    torch_trainer.fit(train, settings.landing.label, {**PARAMS, "batch_size": 100}, max_epochs=2)
    assert len(steps) == 2 * math.ceil(len(train) / 100)


def test_learning_rate_and_optimizer_change_the_result(data, settings):
    train, validation = data["train"], data["validation"]
    features = validation.drop(columns=[settings.landing.label])
    base = torch_trainer.fit(train, settings.landing.label, PARAMS, max_epochs=3).predict_proba(features)
    slower = torch_trainer.fit(
        train, settings.landing.label, {**PARAMS, "learning_rate": 0.0001}, max_epochs=3
    )
    assert not np.allclose(base, slower.predict_proba(features))
    again = torch_trainer.fit(train, settings.landing.label, PARAMS, max_epochs=3).predict_proba(features)
    assert np.allclose(base, again), "same seed, same data: same model"


def test_an_unknown_optimizer_is_refused(data, settings):
    with pytest.raises(ValueError, match="not one of adam, adamw, sgd"):
        torch_trainer.fit(
            data["train"], settings.landing.label, {**PARAMS, "optimizer": "rmsprop"}, max_epochs=1
        )


def test_the_trainer_cli_trains_a_torch_trial_and_reports_its_device(data, settings, local_mlflow, tmp_path):
    import json

    from landfall.pipeline.training.trainer import main

    label = settings.landing.label
    for name in ("train", "validation"):
        data[name].to_parquet(tmp_path / f"{name}.parquet")
    argv = ["--train", str(tmp_path / "train.parquet"), "--validation", str(tmp_path / "validation.parquet"),
            "--partition", "2026-01-01", "--params", json.dumps({**PARAMS, "optimizer": "adamw", "trial": 3}),
            "--model", "torch", "--label", label, "--max-epochs", "5", "--experiment", "torch-cli",
            "--out", str(tmp_path / "return.json")]  # fmt: skip
    returned = main(argv)
    result = json.loads((tmp_path / "return.json").read_text())
    assert result == returned
    assert result["model"] == "torch" and result["device"] == (
        "cuda:0" if torch.cuda.is_available() else "cpu"
    )
    assert result["metrics_split"] == "validation" and result["metrics"]["accuracy"] > 0.8
    assert result["params"] == {**PARAMS, "optimizer": "adamw"}  # the trial's number is not a hyperparameter
    assert result["model_uri"] == f"runs:/{result['run_id']}/model"
    run = local_mlflow.get_run(result["run_id"])
    assert (run.data.tags["landfall.model"], run.data.tags["landfall.stage"]) == ("torch", "trial")


def test_the_logged_model_loads_back_with_the_same_predictions(data, settings, local_mlflow):
    import mlflow

    from landfall.pipeline.training.models import PIPELINE_TAGS, load_trial_model, log_model

    features = data["test"].drop(columns=[settings.landing.label])
    model = torch_trainer.fit(data["train"], settings.landing.label, PARAMS, max_epochs=3)
    mlflow.set_experiment("torch-roundtrip")
    with mlflow.start_run(tags={**PIPELINE_TAGS, "landfall.stage": "trial"}) as run:
        log_model(model, "torch")  # what the trainer does with a torch trial
    # How evaluate and the scoring service load it: weights-only state_dict and JSON, no pickle.
    loaded = load_trial_model(local_mlflow, run.info.run_id, "torch-roundtrip")
    assert isinstance(loaded, torch_trainer.TorchClassifier)
    assert np.allclose(loaded.predict_proba(features), model.predict_proba(features), atol=1e-6)
    assert (loaded.predict(features) == model.predict(features)).all()
