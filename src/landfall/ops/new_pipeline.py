"""`landfall new-pipeline`: a pipeline from a sample of the user's own table.

The schema is inferred so that a normal next day passes it: dtypes from the sample, categories of text
columns (the label's classes too), a lower bound of 0 only where every sampled value is non-negative and
no upper bound, nullable where the sample has gaps. The id column is named or found (a unique column
named like an id). The block is appended to the project's config file, checked by loading the project
(the file is put back as it was when it does not load), and the pipeline's module gets a `fit` that
trains a sound default model for the task.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

MAX_CATEGORIES = 100
"""A text column with more distinct values is not a category (an id, free text): it is refused."""
MAX_CLASSES = 50
TREE_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"


class CannotInfer(ValueError):
    """The sample does not say enough to make a pipeline; the message says which flag or column to fix."""


@dataclass(frozen=True)
class NewPipeline:
    name: str
    task: str
    block: dict[str, Any]  # the pipeline's block, as it goes under `pipelines:`
    module: str  # pipelines/<name>.py


def _dtype(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int64"
    if pd.api.types.is_float_dtype(series):
        # A CSV's whole numbers read as floats: still whole numbers (with a gap, floats: NaN needs them).
        present = series.dropna()
        return (
            "int64"
            if len(present) and (present == present.round()).all() and series.notna().all()
            else "float64"
        )
    return "string"


def _column(series: pd.Series, is_id: bool) -> dict[str, Any]:
    dtype = _dtype(series)
    spec: dict[str, Any] = {"name": str(series.name), "dtype": dtype}
    if series.isna().any():
        spec["nullable"] = True
    if dtype in ("int64", "float64") and not is_id and series.dropna().ge(0).all():
        spec["min"] = 0
    if dtype == "string" and not is_id:
        values = sorted(str(value) for value in series.dropna().unique())
        if len(values) > MAX_CATEGORIES:
            raise CannotInfer(
                f"column {series.name!r} has {len(values)} distinct texts: not a category. Drop it from the "
                "sample, name it as --id, or write a features function for it"
            )
        spec["allowed"] = values
    return spec


def _id_column(frame: pd.DataFrame, named: str | None, label: str) -> str:
    if named is not None:
        if named not in frame.columns:
            raise CannotInfer(f"--id {named!r} is not a column of the sample ({list(frame.columns)})")
        if frame[named].duplicated().any() or frame[named].isna().any():
            raise CannotInfer(f"--id {named!r} repeats or has gaps in the sample: a row's id must be unique")
        return named
    unique = [
        c for c in frame.columns if c != label and frame[c].notna().all() and not frame[c].duplicated().any()
    ]
    named_like = [c for c in unique if str(c).lower() == "id" or str(c).lower().endswith(("_id", "id"))]
    if named_like or unique:
        return str((named_like or unique)[0])
    raise CannotInfer("no column of the sample is unique: name the row's id with --id (a unique column)")


def _task(labels: pd.Series, task: str | None) -> str:
    if task is not None:
        return task
    distinct = labels.dropna().nunique()
    if distinct == 2:
        return "binary"
    if _dtype(labels) == "float64" or distinct > MAX_CLASSES:
        return "regression"
    return "multiclass"


def infer(
    name: str, sample: pd.DataFrame, label: str, task: str | None = None, id_column: str | None = None
) -> NewPipeline:
    """The pipeline `name` for tables like `sample`, predicting `label`."""
    if label not in sample.columns:
        raise CannotInfer(f"--label {label!r} is not a column of the sample ({list(sample.columns)})")
    if len(sample) < 10:
        raise CannotInfer(f"the sample has {len(sample)} rows: give at least 10 (a few hundred is better)")
    if sample[label].isna().any():
        raise CannotInfer(f"the label {label!r} has gaps in the sample: every row to learn from needs one")
    task = _task(sample[label], task)
    if task == "regression" and _dtype(sample[label]) not in ("int64", "float64"):
        raise CannotInfer(f"--task regression needs a numeric label; {label!r} holds text")
    if task == "binary" and sample[label].nunique() != 2:
        raise CannotInfer(f"--task binary needs two classes; {label!r} has {sample[label].nunique()}")
    identity = _id_column(sample, id_column, label)
    columns = [_column(sample[column], column == identity) for column in sample.columns]
    for spec in columns:  # a label's bounds would refuse a day with a new extreme: only its dtype
        if spec["name"] == label:
            spec.pop("min", None)
    block = {
        # The sample itself is a day the pipeline accepts (`land --file` it to start).
        "landing": {
            "id_column": identity,
            "label": label,
            "min_rows": min(100, len(sample)),
            "columns": columns,
        },
        "training": {
            "task": task,
            "trainer": f"python:{name}:fit",
            "grid": {"learning_rate": [0.05, 0.1]},
            "trusted_types": [TREE_PREDICTOR],
        },
    }
    if task != "regression":
        # No accuracy floor to guess: the first model must still beat the majority class by the margin.
        block["deploy"] = {"min_score": 0.0}
    return NewPipeline(name, task, block, _module(name, task, label))


def _module(name: str, task: str, label: str) -> str:
    estimator = "HistGradientBoostingRegressor" if task == "regression" else "HistGradientBoostingClassifier"
    answers = "predict" if task == "regression" else "predict and predict_proba"
    return textwrap.dedent(
        f'''\
        """The {name} pipeline's model: `fit` is its trainer (training.trainer: python:{name}:fit).

        `train` and `validation` hold the feature columns and the label; `params` is one trial's values
        from the pipeline's `training.grid`. Return a fitted estimator with {answers}.
        Gradient-boosted trees: a sound default for tables, with no scaling to do; change what you like.
        """

        from sklearn.ensemble import {estimator}

        LABEL = {label!r}


        def fit(train, validation, params):
            features, target = train.drop(columns=[LABEL]), train[LABEL]
            model = {estimator}(learning_rate=params["learning_rate"], max_iter=200, random_state=0)
            return model.fit(features, target)
        '''
    )


def render_block(pipeline: NewPipeline) -> str:
    """The block as YAML lines under `pipelines:` (indented two spaces), for the end of the config file."""
    body = yaml.safe_dump(
        {pipeline.name: pipeline.block}, sort_keys=False, default_flow_style=None, width=100
    )
    return textwrap.indent(body, "  ")


def append_block(config: Path, pipeline: NewPipeline) -> str:
    """The config file's text with the pipeline appended under `pipelines:`, which must be its last
    top-level key (so the file's comments and layout stay as they are)."""
    text = config.read_text()
    loaded = yaml.safe_load(text) or {}
    if not isinstance(loaded.get("pipelines"), dict) or list(loaded)[-1] != "pipelines":
        raise CannotInfer(
            f"{config}: `pipelines:` is not the file's last top-level section; add this block under it by "
            "hand:\n" + render_block(pipeline)
        )
    if pipeline.name in loaded["pipelines"]:
        raise CannotInfer(f"{config} already has a pipeline {pipeline.name!r}: choose another name")
    return text.rstrip("\n") + "\n\n" + render_block(pipeline)
