"""The canary: before a candidate is promoted, the scoring service must answer a held-out sample exactly as
the offline evaluation did. It catches what differs between the two paths: features built differently,
a model that does not load the same, a service serving something else."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from landfall.core.pipeline_settings import LandingSettings
from landfall.pipeline.features import split_of

CANARY_SPLIT = (
    "canary"  # processed/date=<D>/<version>/canary.parquet, beside the train/validation/test splits
)

# Probabilities may differ in the last bits between a batch of 200 rows and a batch of 50 (BLAS blocks
# the matrix product differently); anything beyond that is a different computation.
TOLERANCE = 1e-6


class ModelCannotScore(RuntimeError):
    """The scorer is up but the model could not score the rows (the service's 503 `model_failure`).
    Defined here, below the serving layer, so that the canary can tell it from a service that is away."""


def sample(
    raw: pd.DataFrame, landing: LandingSettings, validation_fraction: float, test_fraction: float, size: int
) -> pd.DataFrame:
    """The first `size` rows of the held-out test split, in the order preprocess wrote that split, as the
    service's clients send them: the landing columns without the label."""
    test = raw[split_of(raw[landing.id_column], validation_fraction, test_fraction) == "test"].head(size)
    return test[landing.feature_columns].reset_index(drop=True)


def as_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows (plain ints, floats and strings: a float's repr reads back as the same double; a
    missing value of a nullable column is null, which JSON has and NaN is not)."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):  # NaN
        return None
    if isinstance(value, np.floating) and np.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


@dataclass(frozen=True)
class CanaryReport:
    rows: int
    mismatched_predictions: int
    max_probability_gap: float
    latency_p95_ms: float
    passed: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _probability_gap(expected: list[dict[str, float]], answered: list[dict[str, float]]) -> float:
    """The largest difference of one class's probability in one row (inf: a row answered other classes)."""
    gap = 0.0
    for want, got in zip(expected, answered, strict=True):
        if not isinstance(want, dict) or not isinstance(got, dict) or set(want) != set(got):
            return float("inf")  # other classes (or an expectation written before per-class answers)
        gap = max(gap, *(abs(want[name] - got[name]) for name in want)) if want else gap
    return gap


def compare(
    expected: dict[str, Any],
    answered: dict[str, Any],
    latencies_ms: list[float],
    max_latency_ms: float,
    tolerance: float = TOLERANCE,
) -> CanaryReport:
    """A classifier's answers must name the same class for every row, with every class's probability
    within TOLERANCE; a regressor's predictions must be within `tolerance` (deploy.canary_tolerance)."""
    want_p, got_p = list(expected["predictions"]), list(answered["predictions"])
    if len(want_p) != len(got_p):
        return CanaryReport(
            len(want_p),
            len(want_p),
            float("inf"),
            0.0,
            False,
            f"the service answered {len(got_p)} predictions for {len(want_p)} rows",
        )
    if "probabilities" in expected:  # a classifier: the same classes, probabilities to the last bits
        mismatched = sum(want != got for want, got in zip(want_p, got_p, strict=True))
        gap = _probability_gap(expected["probabilities"], answered.get("probabilities") or [{}] * len(want_p))
        allowed = TOLERANCE
    else:  # a regressor: numbers within the configured tolerance
        errors = np.abs(np.asarray(want_p, dtype="float64") - np.asarray(got_p, dtype="float64"))
        mismatched = int((errors > tolerance).sum())
        gap, allowed = (float(errors.max()) if len(errors) else 0.0), tolerance
    p95 = float(np.percentile(latencies_ms, 95)) if latencies_ms else 0.0
    if mismatched or gap > allowed:
        what = "probability" if "probabilities" in expected else "prediction"
        reason = (
            f"the service's answers differ from the offline evaluation on {mismatched} of {len(want_p)} rows "
            f"(largest {what} gap {gap:.3g})"
        )
    elif p95 > max_latency_ms:
        reason = (
            f"the service answered in {p95:.0f} ms (p95), more than "
            f"deploy.canary_max_latency_ms {max_latency_ms:.0f}"
        )
    else:
        return CanaryReport(
            len(want_p),
            0,
            gap,
            p95,
            True,
            f"{len(want_p)} held-out rows answered as offline, p95 {p95:.0f} ms",
        )
    return CanaryReport(len(want_p), mismatched, gap, p95, False, reason)


def _failed_before_comparing(rows: list[dict[str, Any]], reason: str) -> CanaryReport:
    """Every row counts as mismatched: the answers were never the candidate's to compare."""
    return CanaryReport(len(rows), len(rows), float("inf"), 0.0, False, reason)


def run_canary(
    rows: list[dict[str, Any]],
    expected: dict[str, Any],
    ask: Callable[[list[dict[str, Any]]], dict],
    batches: int,
    max_latency_ms: float,
    tolerance: float = TOLERANCE,
) -> CanaryReport:
    """Ask the staged candidate for the rows in `batches` requests (timing each) and compare. A replica
    that had to load the candidate first says how long that took (`load_s`); that is not answering time.
    The service answers them through the function that answers /predict: a candidate it cannot score
    with (a 503 `model_failure`, raised by the client as a `ModelCannotScore`) fails the canary at once."""
    if not rows:
        return CanaryReport(
            0, 0, 0.0, 0.0, False, "the canary sample is empty: nothing to check the candidate on"
        )
    answered: dict[str, list] = {"predictions": [], "probabilities": []}
    latencies = []
    for chunk in np.array_split(np.arange(len(rows)), min(batches, len(rows))):
        started = time.perf_counter()
        try:
            answer = ask([rows[i] for i in chunk])
        except ModelCannotScore as error:
            # The same scoring function answers /predict: what fails here would fail in service.
            return _failed_before_comparing(rows, f"the service could not score the rows: {error}")
        latencies.append((time.perf_counter() - started - float(answer.get("load_s") or 0.0)) * 1000)
        if expected.get("run_id") and answer.get("run_id", expected["run_id"]) != expected["run_id"]:
            return _failed_before_comparing(
                rows, f"answered by run {answer['run_id']}, not the candidate {expected.get('run_id')}"
            )
        answered["predictions"] += answer["predictions"]
        answered["probabilities"] += answer.get("probabilities") or []
    return compare(expected, answered, latencies, max_latency_ms, tolerance)
