"""Sample rows for any pipeline, made from its schema: `landfall land` and the tests can feed a pipeline
nobody wrote a generator for.

Every column gets values its schema accepts (numbers within min/max, categories from `allowed`, ids
unique per seed). The label follows a rule over the other columns, with weights drawn from the column
names, so it is the same rule every day and a model can learn it: two classes split at the median
(binary), one class per band of the rule's score (multiclass: the label's `allowed` values, or its whole
numbers from min to max), or the score itself plus noise (regression). `drift` shifts the numbers and
the rule, `label_noise` re-draws that share of labels.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from landfall.core.pipeline_settings import ColumnSpec, LandingSettings

DEFAULT_SPAN = 100.0
"""A numeric column with no max spans this much above its min (or 0)."""


def _weight(name: str) -> float:
    """The rule's weight of a column: fixed by its name, so every day follows the same rule."""
    digest = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    return float(np.random.default_rng(digest).normal(0.0, 1.5))


def _bounds(spec: ColumnSpec) -> tuple[float, float]:
    if spec.min is not None:
        return spec.min, spec.max if spec.max is not None else spec.min + DEFAULT_SPAN
    high = spec.max if spec.max is not None else DEFAULT_SPAN
    return min(0.0, high - DEFAULT_SPAN), high


def make_rows(
    landing: LandingSettings,
    rows: int = 5000,
    seed: int = 0,
    drift: float = 0.0,
    label_noise: float = 0.02,
    task: str = "binary",
) -> pd.DataFrame:
    """`rows` rows that pass `landing`'s checks, with a learnable label of `task`."""
    label_spec = next(spec for spec in landing.columns if spec.name == landing.label)
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    logit = np.zeros(rows)
    for spec in landing.columns:
        if spec.name == landing.label:
            continue
        if spec.name == landing.id_column:
            ids = np.arange(rows) + seed * 10_000_000 + int(spec.min or 0)  # unique per seed
            as_text = spec.dtype == "string"
            columns[spec.name] = (
                np.array([f"id-{i}" for i in ids], dtype=object) if as_text else ids.astype(spec.dtype)
            )
            continue
        if spec.dtype == "string":
            choices = spec.allowed or ["a", "b", "c"]
            values = rng.choice(choices, rows)
            columns[spec.name] = values.astype(object)
            effects = {choice: _weight(f"{spec.name}={choice}") for choice in choices}
            logit += np.array([effects[value] for value in values])
        elif spec.dtype == "bool":
            values = rng.random(rows) < 0.5
            columns[spec.name] = values
            logit += _weight(spec.name) * (values - 0.5) * 2
        else:
            low, high = _bounds(spec)
            share = np.clip(rng.beta(2.0, 2.0, rows) + 0.15 * drift, 0.0, 1.0)
            values = low + share * (high - low)
            if spec.dtype == "int64":
                values = np.floor(values).clip(np.ceil(low), np.floor(high))
            columns[spec.name] = values.astype(spec.dtype)
            logit += _weight(spec.name) * ((values - low) / max(high - low, 1e-9) - 0.5) * 4
    logit += drift * _weight("drift")
    columns[landing.label] = _label(label_spec, task, logit, rng, label_noise)
    return pd.DataFrame({spec.name: columns[spec.name] for spec in landing.columns})


def classes_of(spec: ColumnSpec) -> list[object]:
    """The classes a label column can hold: its `allowed` text, True/False, or its whole numbers."""
    if spec.allowed:
        return list(spec.allowed)
    if spec.dtype == "bool":
        return [False, True]
    if spec.dtype == "int64" and spec.min is not None and spec.max is not None and spec.max - spec.min < 100:
        return list(range(int(spec.min), int(spec.max) + 1))
    return [0, 1]


def _label(
    spec: ColumnSpec, task: str, score: np.ndarray, rng: np.random.Generator, noise: float
) -> np.ndarray:
    rows = len(score)
    if task == "regression":
        low, high = _bounds(spec)
        share = (score - score.min()) / max(float(np.ptp(score)), 1e-9)
        values = low + (0.1 + 0.8 * share) * (high - low) + rng.normal(0.0, 0.01 * (high - low), rows)
        values = values.clip(low, high)
        return np.floor(values).astype("int64") if spec.dtype == "int64" else values.astype("float64")
    classes = classes_of(spec)
    if task == "binary":
        classes = classes[-2:]  # [0, 1], [False, True] or the two allowed texts
    # One class per band of the score, the bands cut at its quantiles: every class about as common.
    cuts = np.quantile(score, np.linspace(0, 1, len(classes) + 1)[1:-1])
    index = np.searchsorted(cuts, score)
    noisy = rng.random(rows) < noise
    index[noisy] = rng.integers(0, len(classes), int(noisy.sum()))
    values = np.array(classes, dtype=object)[index]
    if spec.dtype == "string":
        return values
    return values.astype(bool) if spec.dtype == "bool" else values.astype("int64")
