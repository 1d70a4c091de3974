"""Feature engineering and the deterministic train/test split (pure pandas, no I/O)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from landfall.core.pipeline_settings import LandingSettings


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
) -> dict[str, pd.DataFrame]:
    """Features plus the label column, split three ways: trials are fitted on `train` and compared on
    `validation`; `test` is held out for the candidate-vs-champion evaluation, which no trial has seen."""
    features = build_features(frame, landing)
    features[landing.label] = label_values(frame[landing.label], task)
    which = split_of(frame[landing.id_column], validation_fraction, test_fraction)
    return {name: features[which == name].reset_index(drop=True) for name in SPLITS}
