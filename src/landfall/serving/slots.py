"""The models the service holds: the active one (answers /predict) and a staging slot (the canary).

A slot is an immutable `Served` record; swapping the active model replaces one reference under a lock,
and a request reads that reference once, so each request is answered by exactly one version and the
version it names in its answer is the one that computed it.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from landfall.core.pipeline_settings import ColumnSpec, LandingSettings
from landfall.pipeline.features import FeatureBuilder, build_features
from landfall.pipeline.metrics import NotAnAnswer, Task, answer, as_json


@dataclass(frozen=True)
class Served:
    model: Any
    version: str | None  # the registered version (None for a staged, not yet registered candidate)
    run_id: str
    loaded_at: float


class RowError(ValueError):
    """A row that does not fit the landing schema; `problems` name each bad row and column."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the rows")
        self.problems = problems


def _problem(value: Any, spec: ColumnSpec) -> str | None:
    """What is wrong with one value for its column (the landing schema's own rules), or None."""
    if spec.dtype == "string":
        if not isinstance(value, str):
            return f"expected a string, got {value!r}"
        if spec.allowed is not None and value not in spec.allowed:
            return f"{value!r} is not one of {spec.allowed}"
        return None
    if spec.dtype == "bool":
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected a number, got {value!r}"
    try:
        number = float(value)  # a huge JSON integer overflows here rather than deep in numpy
    except OverflowError:
        return "a number too large"
    if not math.isfinite(number):
        return f"expected a finite number, got {value!r}"
    if spec.dtype == "int64" and not number.is_integer():
        return f"expected a whole number, got {value!r}"
    if spec.min is not None and number < spec.min:
        return f"{value!r} is below the minimum {spec.min:g}"
    if spec.max is not None and number > spec.max:
        return f"{value!r} is above the maximum {spec.max:g}"
    return None


class ModelFailure(RuntimeError):
    """The model could not answer rows that fit the schema: it raised, or its answer is not one of its
    task (the wrong shape or classes, or not finite). The service answers 503 naming the version (never
    a 500), and alerts."""

    def __init__(self, served: Served, kind: str, detail: str) -> None:
        who = f"version {served.version}" if served.version else f"candidate run {served.run_id}"
        super().__init__(f"{who} could not score the rows: {detail}")
        self.served, self.kind, self.detail = served, kind, detail
        self.model: str | None = None  # the registered model, set by the service's route that scored

    @classmethod
    def raised(cls, served: Served, error: Exception) -> ModelFailure:
        return cls(served, type(error).__name__, f"{type(error).__name__}: {error}")


def frame_of(rows: list[dict[str, Any]], landing: LandingSettings) -> pd.DataFrame:
    """The rows as a frame of the landing columns (the label is not needed), or RowError naming each
    missing column and each value the landing schema would refuse (type, category, range). A nullable
    column may hold null (a missing value, as in a landed day); every column must be named."""
    problems = []
    specs = [spec for spec in landing.columns if spec.name != landing.label]
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            problems.append(
                {"row": index, "column": None, "problem": "a row must be an object of column: value"}
            )
            continue
        for spec in specs:
            if spec.name not in row or (row[spec.name] is None and not spec.nullable):
                problems.append({"row": index, "column": spec.name, "problem": "missing"})
            elif row[spec.name] is not None and (problem := _problem(row[spec.name], spec)):
                problems.append({"row": index, "column": spec.name, "problem": problem})
    if problems:
        raise RowError(problems)
    frame = pd.DataFrame([{spec.name: row[spec.name] for spec in specs} for row in rows])
    for spec in specs:  # a nullable number column's nulls are NaN, as when a landed day is read
        if spec.nullable and spec.dtype in ("int64", "float64"):
            frame[spec.name] = frame[spec.name].astype("float64")
    return frame


def score(
    served: Served,
    rows: list[dict[str, Any]],
    landing: LandingSettings,
    task: Task,
    build: FeatureBuilder | None = None,
) -> dict[str, Any]:
    """The model's answers for the rows (features built by the function preprocess uses - the pipeline's
    own, or the schema's - answers by the function the evaluation used): `predictions` and, for a
    classifier, `probabilities` per class."""
    import sklearn

    frame = frame_of(rows, landing)  # RowError: the caller's rows; anything after this is the model's
    try:
        features = build(frame) if build else build_features(frame, landing)
        # frame_of has refused non-finite and out-of-range values (so the derived ratios are finite too):
        # scikit-learn's own finiteness scan is skipped unless a nullable column brought a null.
        with sklearn.config_context(assume_finite=not features.isna().any().any()):
            answers = answer(served.model, features, task)
    except NotAnAnswer as error:
        # The rows fit the schema, so an answer of the wrong shape or a NaN is the model's failure, not
        # the caller's: 503 naming the version, an alert, a failed canary.
        raise ModelFailure(served, "not_an_answer", str(error)) from error
    except Exception as error:
        raise ModelFailure.raised(served, error) from error
    return {**as_json(answers), "version": served.version, "run_id": served.run_id}


class Slots:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: Served | None = None
        self._staging: Served | None = None

    @property
    def active(self) -> Served | None:
        return self._active  # one read of one reference: a request keeps the model it started with

    @property
    def staging(self) -> Served | None:
        return self._staging

    def activate(self, served: Served) -> Served | None:
        """Make `served` the active model; return the one it replaced."""
        with self._lock:
            previous, self._active = self._active, served
            if self._staging is not None and self._staging.run_id == served.run_id:
                self._staging = None
            return previous

    def stage(self, served: Served | None) -> None:
        with self._lock:
            self._staging = served

    @staticmethod
    def served(model: Any, version: str | None, run_id: str) -> Served:
        return Served(model, version, run_id, time.time())
