"""The trainers a pipeline can name (`training.trainer`), and the pipeline's own code they may come from.

* `mlp`: scikit-learn's MLP behind a scaler: a classifier, or a regressor for regression.
* `torch`: the same network in PyTorch (binary tasks), `landfall.pipeline.training.torch_trainer`.
* `sklearn:<module>.<Class>`: any scikit-learn-style estimator, built with the trial's parameters and fitted
  on the feature columns.
* `python:<module>:<function>`: the pipeline's own `fit(train, validation, params) -> estimator`; `train`
  and `validation` are pandas frames of the feature columns and the label column.

User code is imported from the pipeline's code folder (`code_path`, default the project's `pipelines/`)
when a trial runs, never when a DAG file is parsed. An error in it is the user's: `UserCodeError`
carries their traceback, and the trial fails without a retry (the same code would fail the same way).
"""

from __future__ import annotations

import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from landfall.pipeline.user_code import UserCodeError, import_from

__all__ = ["UserCodeError", "fit", "mlp"]


def mlp(task: str, params: dict[str, Any], max_epochs: int, seed: int = 0) -> Any:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    knobs = {
        "hidden_layer_sizes": (int(params["hidden_units"]),),
        "learning_rate_init": float(params["learning_rate"]),
        "batch_size": int(params["batch_size"]),
        "solver": str(params["optimizer"]),
        "max_iter": max_epochs,
        "random_state": seed,
    }
    if task != "regression":
        return make_pipeline(StandardScaler(), MLPClassifier(**knobs))
    # The target scaled too: a network's output layer starts near zero, a price is in the thousands.
    return make_pipeline(
        StandardScaler(),
        TransformedTargetRegressor(regressor=MLPRegressor(**knobs), transformer=StandardScaler()),
    )


def fit(
    trainer: str,
    task: str,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    label: str,
    params: dict[str, Any],
    max_epochs: int,
    code_root: Path | None,
) -> Any:
    """A fitted estimator of `trainer` for one trial (`params`: the trial's values from the grid)."""
    features, target = train.drop(columns=[label]), train[label]
    if trainer == "torch":
        from landfall.pipeline.training.torch_trainer import fit as fit_torch

        return fit_torch(train, label, params, max_epochs)
    if trainer == "mlp":
        model = mlp(task, params, max_epochs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at the epoch cap is expected in a grid
            return model.fit(features, target)
    kind, _, path = trainer.partition(":")
    if kind == "sklearn":
        estimator_class = import_from(path, code_root)
        model = _user_call(trainer, lambda: estimator_class(**params).fit(features, target))
    else:
        user_fit: Callable[..., Any] = import_from(path, code_root)
        model = _user_call(trainer, lambda: user_fit(train.copy(), validation.copy(), dict(params)))
    wanted = ("predict_proba",) if task != "regression" else ("predict",)
    if model is None or not all(callable(getattr(model, name, None)) for name in wanted):
        raise UserCodeError(
            f"{trainer} returned {type(model).__name__}, which has no {' or '.join(wanted)}(); a {task} "
            f"trainer returns a fitted estimator with {', '.join(wanted)}"
        )
    return model


def _user_call(trainer: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as error:
        raise UserCodeError(
            f"{trainer} raised {type(error).__name__}: {error}\n{traceback.format_exc()}"
        ) from error
