"""The trainers a pipeline can name, for each task type, through the trainer's own entry point against a
real MLflow store: scikit-learn estimators by import path, the pipeline's own `fit` from its code folder,
models loaded back with skops and the pipeline's trusted types only; the user's failures are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config_files import PRICES_LANDING, TIERS_LANDING, user_module
from landfall.core.pipeline_settings import LandingSettings
from landfall.pipeline.features import split
from landfall.pipeline.schema_data import make_rows
from landfall.pipeline.training.models import ModelNotSavable, load_trial_model
from landfall.pipeline.training.trainer import answer_split, train_trial
from landfall.pipeline.user_code import UserCodeError

TIERS = LandingSettings.model_validate(yaml.safe_load(TIERS_LANDING))
PRICES = LandingSettings.model_validate(yaml.safe_load(PRICES_LANDING))
FOREST = "sklearn:sklearn.ensemble.RandomForestClassifier"
FOREST_TREE = "sklearn.tree._tree.Tree"


def _splits(tmp_path, landing: LandingSettings, task: str, rows: int = 1500) -> dict[str, str]:
    parts = split(make_rows(landing, rows, seed=11, task=task), landing, 0.2, 0.2, task=task)
    uris = {}
    for name in ("train", "validation", "test"):
        uris[name] = str(tmp_path / f"{name}.parquet")
        parts[name].to_parquet(uris[name], index=False)
    return uris


def _trial(uris, landing, task, trainer, params=None, **options) -> dict:
    return train_trial(
        [uris["train"]],
        [uris["validation"]],
        {**(params or {}), "trial": "t"},
        "2026-01-02",
        trainer=trainer,
        task=task,
        label=landing.label,
        max_epochs=30,
        experiment=f"trainers-{task}",
        **options,
    )


@pytest.mark.parametrize(
    ("landing", "task", "trainer", "params", "trusted", "metric", "good"),
    [
        (TIERS, "multiclass", FOREST, {"n_estimators": 20}, [FOREST_TREE], "accuracy", 0.7),
        (TIERS, "multiclass", "mlp", {"learning_rate": 0.01, "batch_size": 64, "optimizer": "adam",
         "hidden_units": 16}, [], "accuracy", 0.7),
        (PRICES, "regression", "sklearn:sklearn.linear_model.Ridge", {"alpha": 1.0}, [], "r2", 0.8),
        (PRICES, "regression", "mlp", {"learning_rate": 0.01, "batch_size": 64, "optimizer": "adam",
         "hidden_units": 16}, [], "r2", 0.5),
    ],
)  # fmt: skip
def test_each_trainer_fits_scores_and_loads_back_for_its_task(
    local_mlflow, tmp_path, landing, task, trainer, params, trusted, metric, good
):
    uris = _splits(tmp_path, landing, task)
    result = _trial(uris, landing, task, trainer, params, trusted_types=trusted)
    assert result["metrics"][metric] > good, result["metrics"]
    assert result["task"] == task and result["model"] == trainer
    model = load_trial_model(local_mlflow, result["run_id"], f"trainers-{task}", trusted)
    import pandas as pd

    truth, answers = answer_split(model, pd.read_parquet(uris["test"]), landing.label, task)
    if task == "multiclass":
        assert set(answers.classes) == {"bronze", "silver", "gold"} and answers.probabilities.shape[1] == 3
    else:
        assert answers.probabilities is None and len(answers.predicted) == len(truth)


def test_a_model_holding_untrusted_types_fails_its_trial_naming_the_types_to_trust(local_mlflow, tmp_path):
    uris = _splits(tmp_path, TIERS, "multiclass", rows=600)
    forest = FOREST
    with pytest.raises(ModelNotSavable, match=rf"\['{FOREST_TREE}'\].*training\.trusted_types"):
        _trial(uris, TIERS, "multiclass", forest, {"n_estimators": 3})
    # And the loader refuses it the same way: a model logged for one pipeline is not trusted by another.
    logged = _trial(uris, TIERS, "multiclass", forest, {"n_estimators": 3}, trusted_types=[FOREST_TREE])
    from landfall.pipeline.training.models import UntrustedModel

    with pytest.raises(UntrustedModel, match="does not trust"):
        load_trial_model(local_mlflow, logged["run_id"], "trainers-multiclass")


def _user_code(tmp_path, source: str) -> tuple[Path, str]:
    """The pipeline's code folder with `source` as a module of its own; the folder and the module's name."""
    root = tmp_path / "pipelines"
    return root, user_module(root, source, "user_trainer")


def test_a_python_trainer_is_the_users_fit_from_the_code_folder(local_mlflow, tmp_path):
    root, module = _user_code(
        tmp_path,
        """
        from sklearn.linear_model import Ridge

        def fit(train, validation, params):
            assert "price" in train and "price" in validation  # the label column travels with the features
            return Ridge(alpha=params["alpha"]).fit(train.drop(columns=["price"]), train["price"])
        """,
    )
    uris = _splits(tmp_path, PRICES, "regression")
    result = _trial(uris, PRICES, "regression", f"python:{module}:fit", {"alpha": 0.5}, code_root=root)
    assert result["metrics"]["r2"] > 0.8 and result["baseline"]["mean"] > 0


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("def fit(train, validation, params):\n    raise KeyError('no column called spend')\n",
         r"python:user_trainer_\d+:fit raised KeyError: 'no column called spend'(.|\n)*Traceback(.|\n)*"
         r"user_trainer_\d+\.py"),
        ("def fit(train, validation, params):\n    return 42\n",
         "returned int, which has no predict_proba"),
        ("import does_not_exist\n", r"cannot be imported(.|\n)*No module named 'does_not_exist'"),
        ("def fit(train, validation, params):\n    return lambda rows: rows\n", "returned function"),
    ],
)  # fmt: skip
def test_user_code_that_fails_fails_its_trial_with_the_users_own_traceback(
    local_mlflow, tmp_path, source, why
):
    root, module = _user_code(tmp_path, source)
    uris = _splits(tmp_path, TIERS, "multiclass", rows=400)
    with pytest.raises(UserCodeError, match=why):
        _trial(uris, TIERS, "multiclass", f"python:{module}:fit", code_root=root)


def test_a_classifier_without_probabilities_fails_its_trial_saying_what_is_missing(local_mlflow, tmp_path):
    uris = _splits(tmp_path, TIERS, "multiclass", rows=400)
    with pytest.raises(UserCodeError, match="RidgeClassifier, which has no predict_proba"):
        _trial(uris, TIERS, "multiclass", "sklearn:sklearn.linear_model.RidgeClassifier")


def test_a_model_skops_cannot_save_names_the_format_to_use(local_mlflow, tmp_path):
    root, module = _user_code(
        tmp_path,
        """
        from sklearn.linear_model import LogisticRegression

        class Locked(LogisticRegression):
            def fit(self, X, y):
                self.batches_ = (row for row in range(3))  # skops has no way to store a generator
                return super().fit(X, y)

        def fit(train, validation, params):
            return Locked(max_iter=500).fit(train.drop(columns=["tier"]), train["tier"])
        """,
    )
    uris = _splits(tmp_path, TIERS, "multiclass", rows=400)
    with pytest.raises(ModelNotSavable, match=rf"skops cannot save a {module}\.Locked"):
        _trial(uris, TIERS, "multiclass", f"python:{module}:fit", code_root=root)
