"""Feature engineering and the deterministic train/test split (pure pandas, no I/O).

A pipeline's features are built by one function, whichever path asks: preprocessing (so training and
evaluation), and the scoring service (so the canary and every answer). The default is schema-driven
(`build_features`); `features: python:<module>:<function>` in a pipeline's block names the pipeline's
own pure function of a frame of the landing columns (the label never among them) to a frame of numbers,
one row per row. Its source hash (`fingerprint`) is recorded with each processed version and each
MLflow run, so a window never mixes days prepared by different functions unnoticed.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from landfall.core.pipeline_settings import LandingSettings
from landfall.pipeline.user_code import UserCodeError, import_from

SCHEMA_FEATURES = "schema"
FeatureBuilder = Callable[[pd.DataFrame], pd.DataFrame]


def build_features(frame: pd.DataFrame, landing: LandingSettings) -> pd.DataFrame:
    """Numeric model inputs: the numeric columns, two ratios, and one-hot columns for each category.

    Categories come from the schema's `allowed` list, so every partition has the same columns in the
    same order whatever values it happens to contain.
    """
    columns: dict[str, pd.Series] = {}
    for spec in landing.columns:
        if spec.name in (landing.label, landing.id_column):  # the id names a row; it predicts nothing
            continue
        if spec.dtype == "string":
            for value in spec.allowed or sorted(frame[spec.name].dropna().unique()):
                columns[f"{spec.name}={value}"] = (frame[spec.name] == value).astype("float64")
        else:
            columns[spec.name] = frame[spec.name].astype("float64")
    if {"monthly_spend", "usage_hours"} <= set(frame.columns):
        columns["spend_per_usage_hour"] = frame["monthly_spend"] / (frame["usage_hours"] + 1.0)
    if {"support_calls", "tenure_months"} <= set(frame.columns):
        columns["calls_per_tenure_month"] = frame["support_calls"] / (frame["tenure_months"] + 1.0)
    # One constructor call, not a column insert each: the scoring service builds these per request.
    return pd.DataFrame(columns, index=frame.index)


def feature_builder(spec: str, landing: LandingSettings, code_root: Path | None) -> FeatureBuilder:
    """The pipeline's feature function: `build_features` for "schema", else the user's function (imported
    now from the code folder), its answers checked on every call."""
    if spec == SCHEMA_FEATURES:
        return lambda frame: build_features(frame, landing)
    user = import_from(spec.removeprefix("python:"), code_root)
    columns = landing.feature_columns

    def build(frame: pd.DataFrame) -> pd.DataFrame:
        try:
            built = user(frame[columns].copy())
        except Exception as error:
            raise UserCodeError(f"{spec} raised {type(error).__name__}: {error}") from error
        return _checked(spec, built, len(frame), frame.index)

    return build


def _checked(spec: str, built: object, rows: int, index: pd.Index) -> pd.DataFrame:
    """The user function's answer, or UserCodeError saying what it should have been."""
    if not isinstance(built, pd.DataFrame) or len(built) != rows:
        size = len(built) if hasattr(built, "__len__") else "no"
        raise UserCodeError(
            f"{spec} returned {type(built).__name__} of {size} rows for {rows}; a features function returns "
            "a pandas DataFrame with one row per row it was given"
        )
    not_numbers = [
        str(name)
        for name, dtype in built.dtypes.items()
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))
    ]
    if not_numbers or built.columns.duplicated().any() or not len(built.columns):
        raise UserCodeError(
            f"{spec} returned columns {list(built.columns)}: a model's inputs are uniquely named numeric "
            f"columns (not numbers: {not_numbers}); encode text columns (e.g. pd.get_dummies with fixed "
            "categories) in the function"
        )
    built = built.astype("float64").rename(columns=str)
    if built.index.equals(index):
        return built
    if built.index.sort_values().equals(index.sort_values()):
        return built.reindex(index)  # reordered rows: back in the order of the rows they belong to
    if built.index.equals(pd.RangeIndex(rows)):
        return built.set_axis(index)  # a fresh index (reset_index): row i is the i-th row given
    raise UserCodeError(
        f"{spec} returned rows under an index of its own: keep the index of the frame it was given (or "
        "reset it without reordering the rows), so that each row's features stay with its label"
    )


def fingerprint(spec: str, code_root: Path | None) -> str:
    """What prepared a day's features: "schema", or the user's function and a hash of its source."""
    if spec == SCHEMA_FEATURES:
        return SCHEMA_FEATURES
    user = import_from(spec.removeprefix("python:"), code_root)
    try:
        source = inspect.getsource(user)
    except (OSError, TypeError):  # no source file (a built-in, a C function): its qualified name
        source = f"{getattr(user, '__module__', '')}.{getattr(user, '__qualname__', repr(user))}"
    return f"{spec}@{hashlib.sha256(source.encode()).hexdigest()[:16]}"


SPLITS = ("train", "validation", "test")


def label_values(values: pd.Series, task: str = "binary") -> pd.Series:
    """The label as models learn it: numbers for regression; 0/1 for a binary number or bool label;
    text and whole-number classes as they are."""
    if task == "regression":
        return values.astype("float64")
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return values.astype("int64")
    return values.astype(object)


def split_of(ids: pd.Series, validation_fraction: float, test_fraction: float) -> np.ndarray:
    """ "train", "validation" or "test" per row, from a hash of its id: the same row always lands in the
    same split, whatever the row order, the day or the file it came in."""
    buckets = np.array([int(hashlib.sha256(str(i).encode()).hexdigest()[:8], 16) % 10_000 for i in ids])
    test_cut = int(test_fraction * 10_000)
    validation_cut = test_cut + int(validation_fraction * 10_000)
    return np.where(buckets < test_cut, "test", np.where(buckets < validation_cut, "validation", "train"))


def split(
    frame: pd.DataFrame,
    landing: LandingSettings,
    validation_fraction: float,
    test_fraction: float,
    task: str = "binary",
    build: FeatureBuilder | None = None,
) -> dict[str, pd.DataFrame]:
    """Features plus the label column, split three ways: trials are fitted on `train` and compared on
    `validation`; `test` is held out for the candidate-vs-champion evaluation, which no trial has seen."""
    features = build(frame) if build else build_features(frame, landing)
    features[landing.label] = label_values(frame[landing.label], task)
    which = split_of(frame[landing.id_column], validation_fraction, test_fraction)
    return {name: features[which == name].reset_index(drop=True) for name in SPLITS}
