"""Feature engineering and the deterministic train/test split (pure pandas, no I/O)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from landfall.settings import LandingSettings

ID_COLUMN = "customer_id"


def build_features(frame: pd.DataFrame, landing: LandingSettings) -> pd.DataFrame:
    """Numeric model inputs: the numeric columns, two ratios, and one-hot columns for each category.

    Categories come from the schema's `allowed` list, so every partition has the same columns in the
    same order whatever values it happens to contain.
    """
    out = pd.DataFrame(index=frame.index)
    for spec in landing.columns:
        if spec.name in (landing.label, ID_COLUMN):
            continue
        if spec.dtype == "string":
            for value in spec.allowed or sorted(frame[spec.name].dropna().unique()):
                out[f"{spec.name}={value}"] = (frame[spec.name] == value).astype("float64")
        else:
            out[spec.name] = frame[spec.name].astype("float64")
    if {"monthly_spend", "usage_hours"} <= set(frame.columns):
        out["spend_per_usage_hour"] = frame["monthly_spend"] / (frame["usage_hours"] + 1.0)
    if {"support_calls", "tenure_months"} <= set(frame.columns):
        out["calls_per_tenure_month"] = frame["support_calls"] / (frame["tenure_months"] + 1.0)
    return out


def test_mask(ids: pd.Series, test_fraction: float) -> np.ndarray:
    """True for the held-out rows: a hash of the id, so the split does not depend on row order."""
    buckets = np.array([int(hashlib.sha256(str(i).encode()).hexdigest()[:8], 16) % 10_000 for i in ids])
    return buckets < int(test_fraction * 10_000)


def split(
    frame: pd.DataFrame, landing: LandingSettings, test_fraction: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) frames of features plus the label column."""
    features = build_features(frame, landing)
    features[landing.label] = frame[landing.label].astype("int64")
    held_out = test_mask(frame[ID_COLUMN] if ID_COLUMN in frame else pd.Series(frame.index), test_fraction)
    return features[~held_out].reset_index(drop=True), features[held_out].reset_index(drop=True)
