"""Fit time and held-out score per trainer and task type, on rows made from a schema of each task: what
choosing a trainer costs, measured without a stack (the same `estimators.fit` a trial calls)."""

from __future__ import annotations

import time
from typing import Any

import yaml

from landfall.core.pipeline_settings import LandingSettings
from landfall.pipeline.features import split
from landfall.pipeline.metrics import DEFAULT_METRIC
from landfall.pipeline.schema_data import make_rows

_COLUMNS = """
  - {name: row_id, dtype: int64, min: 0}
  - {name: seats, dtype: int64, min: 1, max: 500}
  - {name: usage, dtype: float64, min: 0, max: 10000}
  - {name: distance, dtype: float64, min: 0, max: 50}
  - {name: region, dtype: string, allowed: [emea, amer, apac]}
"""
LABELS = {
    "binary": "{name: label, dtype: int64, min: 0, max: 1}",
    "multiclass": "{name: label, dtype: string, allowed: [bronze, silver, gold]}",
    "regression": "{name: label, dtype: float64, min: 0, max: 1000}",
}
MLP = {"learning_rate": 0.01, "batch_size": 256, "optimizer": "adam", "hidden_units": 32}
TRAINERS: dict[str, dict[str, dict[str, Any]]] = {
    "binary": {
        "mlp": MLP,
        "sklearn:sklearn.ensemble.HistGradientBoostingClassifier": {},
        "sklearn:sklearn.linear_model.LogisticRegression": {"max_iter": 1000},
    },
    "multiclass": {
        "mlp": MLP,
        "sklearn:sklearn.ensemble.HistGradientBoostingClassifier": {},
        "sklearn:sklearn.linear_model.LogisticRegression": {"max_iter": 1000},
    },
    "regression": {
        "mlp": MLP,
        "sklearn:sklearn.ensemble.HistGradientBoostingRegressor": {},
        "sklearn:sklearn.linear_model.Ridge": {},
    },
}


def landing_of(task: str) -> LandingSettings:
    text = f"id_column: row_id\nlabel: label\ncolumns:{_COLUMNS}  - {LABELS[task]}\n"
    return LandingSettings.model_validate(yaml.safe_load(text))


def trainer_fit_times(rows: int = 20_000, max_epochs: int = 60) -> dict[str, Any]:
    from landfall.pipeline.metrics import metrics_of
    from landfall.pipeline.training import estimators
    from landfall.pipeline.training.trainer import answer_split

    figures: dict[str, Any] = {"rows": rows}
    for task, trainers in TRAINERS.items():
        landing = landing_of(task)
        parts = split(make_rows(landing, rows, seed=5, task=task), landing, 0.2, 0.2, task=task)
        metric = DEFAULT_METRIC[task]
        figures[task] = {}
        for trainer, params in trainers.items():
            started = time.perf_counter()
            model = estimators.fit(
                trainer, task, parts["train"], parts["validation"], "label", params, max_epochs, None
            )
            fit_s = time.perf_counter() - started
            truth, answers = answer_split(model, parts["test"], "label", task)
            score = metrics_of(task, truth, answers)[metric]
            figures[task][trainer] = {"fit_s": round(fit_s, 2), metric: round(score, 4)}
    return {"trainer_fit": figures}
