"""What a pipeline predicts and how its answers are scored: three task types, their metrics (each knowing
whether higher is better), and the one function that turns a model's output into answers.

`answer()` is the only place a model is asked anything: the trials, the evaluation, the canary's
expectation and the scoring service all call it, so what is served is what was evaluated. A classifier
is asked for probabilities once and its prediction is the most probable class (scikit-learn's own
`predict` does the same); a regressor is asked to `predict`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")
CLASSIFICATION = frozenset({"binary", "multiclass"})


@dataclass(frozen=True)
class Answers:
    """A model's answers for some rows: the predictions and, for a classifier, one probability column per
    class in `classes` order."""

    predicted: np.ndarray
    probabilities: np.ndarray | None = None
    classes: tuple[Any, ...] | None = None

    def take(self, rows: np.ndarray) -> Answers:
        probabilities = None if self.probabilities is None else self.probabilities[rows]
        return Answers(self.predicted[rows], probabilities, self.classes)

    def head(self, size: int) -> Answers:
        return self.take(np.arange(min(size, len(self.predicted))))


class NotAnAnswer(ValueError):
    """The model's output is not an answer of its task (shape, classes or values); says what it was."""


def plain(value: Any) -> Any:
    """A numpy scalar as the plain Python value JSON and MLflow take."""
    return value.item() if hasattr(value, "item") else value


def answer(model: Any, features: pd.DataFrame, task: Task) -> Answers:
    """Ask `model` about `features` once; NotAnAnswer when what it says is not an answer of `task`."""
    rows = len(features)
    if task == "regression":
        predicted = np.asarray(model.predict(features), dtype="float64").reshape(-1)
        if predicted.shape != (rows,):
            raise NotAnAnswer(f"it predicts {predicted.shape[0]} value(s) for {rows} row(s)")
        if not np.isfinite(predicted).all():
            bad = np.flatnonzero(~np.isfinite(predicted))
            raise NotAnAnswer(
                f"it predicts non-finite values for {len(bad)} of {rows} row(s) (rows {_few(bad)})"
            )
        return Answers(predicted)
    probabilities = np.asarray(model.predict_proba(features), dtype="float64")
    classes = tuple(plain(c) for c in getattr(model, "classes_", range(probabilities.shape[-1])))
    wanted = "two" if task == "binary" else "at least two"
    if (
        probabilities.ndim != 2
        or probabilities.shape != (rows, len(classes))
        or len(classes) < 2
        or (task == "binary" and len(classes) != 2)
    ):
        # Checked on every answer, whatever the rows: a model that answers the canary answers any row.
        raise NotAnAnswer(
            f"it answers probabilities of shape {probabilities.shape} for the classes {list(classes)}; "
            f"a {task} model answers {rows} row(s) with one column for each of {wanted} classes"
        )
    if not np.isfinite(probabilities).all():
        bad = np.flatnonzero(~np.isfinite(probabilities).all(axis=1))
        raise NotAnAnswer(
            f"it answers non-finite probabilities for {len(bad)} of {rows} row(s) (rows {_few(bad)})"
        )
    return Answers(np.asarray(classes, dtype=object)[probabilities.argmax(axis=1)], probabilities, classes)


def _few(rows: np.ndarray) -> str:
    return f"{rows[:10].tolist()}{' ...' if len(rows) > 10 else ''}"


def as_json(answers: Answers) -> dict[str, list]:
    """`predictions` (class labels or numbers) and, for a classifier, `probabilities`: one mapping of
    class -> probability per row (a JSON key is text, so a class 1 is the key "1")."""
    out: dict[str, list] = {"predictions": [plain(p) for p in answers.predicted]}
    if answers.probabilities is not None:
        names = [str(c) for c in answers.classes or ()]
        out["probabilities"] = [
            dict(zip(names, map(float, row), strict=True)) for row in answers.probabilities
        ]
    return out


# --- metrics ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    name: str
    tasks: frozenset[str]
    higher_is_better: bool
    compute: Callable[[np.ndarray, Answers], float]

    def better(self, score: float, other: float) -> float:
        """How much `score` is better than `other`, in the metric's units (negative: worse)."""
        return score - other if self.higher_is_better else other - score


def _accuracy(truth: np.ndarray, answers: Answers) -> float:
    return float(np.mean(answers.predicted == truth)) if len(truth) else 0.0


def _positive(answers: Answers) -> Any:
    """A binary task's positive class: the second of the two (1 of 0/1, True of False)."""
    return (answers.classes or (0, 1))[-1]


def _f1_of(truth: np.ndarray, predicted: np.ndarray, positive: Any) -> float:
    """F1 of one class against the rest (0 when it is neither predicted nor present)."""
    hits = int(np.sum((predicted == positive) & (truth == positive)))
    claimed, present = int(np.sum(predicted == positive)), int(np.sum(truth == positive))
    return 2.0 * hits / (claimed + present) if claimed + present else 0.0


def _f1(truth: np.ndarray, answers: Answers) -> float:
    return _f1_of(truth, answers.predicted, _positive(answers))


def _f1_macro(truth: np.ndarray, answers: Answers) -> float:
    labels = list(answers.classes or np.unique(truth))
    return float(np.mean([_f1_of(truth, answers.predicted, label) for label in labels]))


def _binary_auc(is_positive: np.ndarray, score: np.ndarray) -> float | None:
    """The ROC AUC of one class against the rest (Mann-Whitney), None when a side is empty."""
    from scipy.stats import rankdata

    positives = int(is_positive.sum())
    negatives = len(is_positive) - positives
    if not positives or not negatives:
        return None
    ranks = rankdata(score)
    return float((ranks[is_positive].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _roc_auc(truth: np.ndarray, answers: Answers) -> float:
    """Binary: the positive class's AUC. Multiclass: the mean one-vs-rest AUC over the classes present.
    0.5 (chance) when no class has both sides in the rows."""
    classes = answers.classes or ()
    if answers.probabilities is None:
        return 0.5
    if len(classes) == 2:
        found = _binary_auc(truth == classes[1], answers.probabilities[:, 1])
        return 0.5 if found is None else found
    found = [_binary_auc(truth == c, answers.probabilities[:, i]) for i, c in enumerate(classes)]
    present = [value for value in found if value is not None]
    return float(np.mean(present)) if present else 0.5


def log_loss_terms(truth: np.ndarray, answers: Answers) -> np.ndarray:
    """Each row's -log(probability of its true class), clipped (a class the model never saw: 1e-15)."""
    index = {c: i for i, c in enumerate(answers.classes or ())}
    columns = np.array([index.get(plain(t), -1) for t in truth], dtype=np.int64)
    chosen = np.where(columns >= 0, answers.probabilities[np.arange(len(truth)), columns.clip(0)], 0.0)
    return -np.log(np.clip(chosen, 1e-15, 1.0))


def _log_loss(truth: np.ndarray, answers: Answers) -> float:
    if answers.probabilities is None or not len(truth):
        return float("inf")
    return float(np.mean(log_loss_terms(truth, answers)))


def _rmse(truth: np.ndarray, answers: Answers) -> float:
    return float(np.sqrt(np.mean((answers.predicted - truth) ** 2))) if len(truth) else float("inf")


def _mae(truth: np.ndarray, answers: Answers) -> float:
    return float(np.mean(np.abs(answers.predicted - truth))) if len(truth) else float("inf")


def _r2(truth: np.ndarray, answers: Answers) -> float:
    spread = float(np.sum((truth - np.mean(truth)) ** 2)) if len(truth) else 0.0
    if spread == 0.0:
        return 0.0  # a constant truth explains nothing either way
    return float(1.0 - np.sum((truth - answers.predicted) ** 2) / spread)


_CLASSIFIERS = frozenset({"binary", "multiclass"})
METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("accuracy", _CLASSIFIERS, True, _accuracy),
        Metric("f1", frozenset({"binary"}), True, _f1),
        Metric("f1_macro", _CLASSIFIERS, True, _f1_macro),
        Metric("roc_auc", _CLASSIFIERS, True, _roc_auc),
        Metric("log_loss", _CLASSIFIERS, False, _log_loss),
        Metric("rmse", frozenset({"regression"}), False, _rmse),
        Metric("mae", frozenset({"regression"}), False, _mae),
        Metric("r2", frozenset({"regression"}), True, _r2),
    )
}
DEFAULT_METRIC: dict[str, str] = {"binary": "accuracy", "multiclass": "accuracy", "regression": "rmse"}


def metrics_for(task: Task) -> list[str]:
    return [name for name, metric in METRICS.items() if task in metric.tasks]


def metrics_of(task: Task, truth: np.ndarray, answers: Answers) -> dict[str, float]:
    """Every metric of the task on these rows (what a run logs and the comparison picture shows)."""
    truth = truth_of(truth, task)
    return {name: METRICS[name].compute(truth, answers) for name in metrics_for(task)}


def truth_of(values: Sequence[Any] | np.ndarray, task: Task) -> np.ndarray:
    """The label column as the metrics compare it: floats for regression, plain values for classes."""
    if task == "regression":
        return np.asarray(values, dtype="float64")
    return np.asarray([plain(v) for v in values], dtype=object)


def trivial_answers(task: Task, baseline: dict[str, Any], rows: int) -> Answers:
    """What a model that learned nothing answers: the training split's mean, or its class shares (and
    so its majority class) for every row. `baseline` is what the trial recorded (`baseline_of`)."""
    if task == "regression":
        return Answers(np.full(rows, float(baseline["mean"])))
    classes = tuple(baseline["classes"])
    shares = np.asarray(baseline["shares"], dtype="float64")
    majority = classes[int(shares.argmax())]
    return Answers(np.full(rows, majority, dtype=object), np.tile(shares, (rows, 1)), classes)


def baseline_of(task: Task, labels: pd.Series) -> dict[str, Any]:
    """The training split's summary a trivial model answers from (JSON-ready: it travels in XCom)."""
    if task == "regression":
        return {"mean": float(labels.astype("float64").mean())}
    counts = labels.value_counts()
    classes = sorted(counts.index.tolist(), key=lambda c: (str(type(c)), c))
    total = float(counts.sum())
    return {"classes": [plain(c) for c in classes], "shares": [float(counts[c]) / total for c in classes]}
