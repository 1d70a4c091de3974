"""Task types and their metrics: each metric's value and direction, the one function every path answers
with, the JSON the service sends, and what a model that learned nothing answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk

from landfall.core.pipeline_settings import _METRIC_TASKS
from landfall.pipeline.metrics import (
    METRICS,
    Answers,
    NotAnAnswer,
    answer,
    as_json,
    baseline_of,
    metrics_for,
    metrics_of,
    trivial_answers,
)

RNG = np.random.default_rng(0)
TRUTH = RNG.integers(0, 3, 400)
PROBABILITIES = RNG.dirichlet([1.0, 1.0, 1.0], 400)
PROBABILITIES[np.arange(400), TRUTH] += 0.8  # informative, not perfect
PROBABILITIES /= PROBABILITIES.sum(axis=1, keepdims=True)
MULTICLASS = Answers(PROBABILITIES.argmax(axis=1), PROBABILITIES, (0, 1, 2))


@pytest.mark.parametrize(
    ("metric", "higher"),
    [
        ("accuracy", True),
        ("f1", True),
        ("f1_macro", True),
        ("roc_auc", True),
        ("log_loss", False),
        ("rmse", False),
        ("mae", False),
        ("r2", True),
    ],
)
def test_each_metric_knows_whether_higher_is_better(metric, higher):
    measure = METRICS[metric]
    assert measure.higher_is_better is higher
    assert measure.better(2.0, 1.0) == (1.0 if higher else -1.0)


def test_the_config_and_the_metrics_agree_on_which_task_each_metric_scores():
    assert {name: set(tasks) for name, tasks in _METRIC_TASKS.items()} == {
        name: set(metric.tasks) for name, metric in METRICS.items()
    }


def test_multiclass_metrics_equal_scikit_learns():
    found = metrics_of("multiclass", TRUTH, MULTICLASS)
    assert set(found) == set(metrics_for("multiclass")) == {"accuracy", "f1_macro", "roc_auc", "log_loss"}
    assert found["accuracy"] == pytest.approx(sk.accuracy_score(TRUTH, MULTICLASS.predicted))
    assert found["f1_macro"] == pytest.approx(sk.f1_score(TRUTH, MULTICLASS.predicted, average="macro"))
    assert found["roc_auc"] == pytest.approx(sk.roc_auc_score(TRUTH, PROBABILITIES, multi_class="ovr"))
    assert found["log_loss"] == pytest.approx(sk.log_loss(TRUTH, PROBABILITIES))


def test_binary_metrics_equal_scikit_learns_for_text_classes_too():
    truth = np.array(["no", "yes", "yes", "no", "yes", "no"], dtype=object)
    positive = np.array([0.2, 0.9, 0.4, 0.1, 0.7, 0.6])
    answers = Answers(
        np.where(positive > 0.5, "yes", "no").astype(object),
        np.column_stack([1 - positive, positive]),
        ("no", "yes"),
    )
    found = metrics_of("binary", truth, answers)
    assert found["f1"] == pytest.approx(sk.f1_score(truth, answers.predicted, pos_label="yes"))
    assert found["roc_auc"] == pytest.approx(sk.roc_auc_score(truth == "yes", positive))


def test_regression_metrics_equal_scikit_learns():
    truth = RNG.normal(20.0, 5.0, 300)
    predicted = truth + RNG.normal(0.0, 2.0, 300)
    found = metrics_of("regression", truth, Answers(predicted))
    assert found == pytest.approx(
        {
            "rmse": np.sqrt(sk.mean_squared_error(truth, predicted)),
            "mae": sk.mean_absolute_error(truth, predicted),
            "r2": sk.r2_score(truth, predicted),
        }
    )


def test_auc_of_a_split_without_both_classes_is_chance_not_a_crash():
    ones = np.ones(5, dtype=int)
    answers = Answers(ones, np.tile([0.3, 0.7], (5, 1)), (0, 1))
    assert metrics_of("binary", ones, answers)["roc_auc"] == 0.5


class _Fitted:
    """A stand-in estimator: answers what it is given."""

    def __init__(self, probabilities=None, classes=None, predictions=None):
        self.probabilities, self.classes_, self.predictions = probabilities, classes, predictions

    def predict_proba(self, features):
        return self.probabilities

    def predict(self, features):
        return self.predictions


FEATURES = pd.DataFrame({"x": [1.0, 2.0, 3.0]})


def test_a_classifier_answers_the_most_probable_class_and_the_service_maps_class_to_probability():
    model = _Fitted(np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3], [0.0, 0.1, 0.9]]), np.array(["a", "b", "c"]))
    answers = answer(model, FEATURES, "multiclass")
    assert answers.predicted.tolist() == ["b", "a", "c"]
    body = as_json(answers)
    assert body["predictions"] == ["b", "a", "c"]
    assert body["probabilities"][0] == {"a": 0.1, "b": 0.7, "c": 0.2}


def test_integer_classes_become_plain_json_values():
    import json

    model = _Fitted(np.array([[0.2, 0.8]] * 3), np.array([0, 1], dtype=np.int64))
    body = as_json(answer(model, FEATURES, "binary"))
    assert json.loads(json.dumps(body)) == {
        "predictions": [1, 1, 1],
        "probabilities": [{"0": 0.2, "1": 0.8}] * 3,
    }


@pytest.mark.parametrize(
    ("model", "task", "why"),
    [
        (_Fitted(np.ones((3, 1)), np.array([1])), "binary", "one column for each of two classes"),
        (_Fitted(np.full((3, 3), 1 / 3), np.array([0, 1, 2])), "binary", "two classes"),
        (
            _Fitted(np.array([[0.5, 0.5], [np.nan, 1.0], [0.5, 0.5]]), np.array([0, 1])),
            "binary",
            "non-finite",
        ),
        (_Fitted(predictions=np.array([1.0, np.inf, 2.0])), "regression", "non-finite values for 1 of 3"),
        (_Fitted(predictions=np.array([1.0, 2.0])), "regression", "2 value"),
    ],
)
def test_an_answer_that_is_not_one_of_the_task_is_refused_naming_what_it_was(model, task, why):
    with pytest.raises(NotAnAnswer, match=why):
        answer(model, FEATURES, task)


def test_a_regressor_answers_numbers_without_probabilities():
    body = as_json(answer(_Fitted(predictions=np.array([1.5, 2.0, -3.0])), FEATURES, "regression"))
    assert body == {"predictions": [1.5, 2.0, -3.0]}


def test_a_model_that_learned_nothing_answers_the_training_majority_or_mean():
    labels = pd.Series([1, 1, 1, 0])
    baseline = baseline_of("binary", labels)
    assert baseline == {"classes": [0, 1], "shares": [0.25, 0.75]}
    trivial = trivial_answers("binary", baseline, 4)
    assert trivial.predicted.tolist() == [1, 1, 1, 1] and trivial.probabilities.tolist() == [[0.25, 0.75]] * 4
    assert METRICS["accuracy"].compute(np.array([1, 1, 1, 0], dtype=object), trivial) == 0.75

    mean = baseline_of("regression", pd.Series([2.0, 4.0]))
    assert mean == {"mean": 3.0}
    assert trivial_answers("regression", mean, 2).predicted.tolist() == [3.0, 3.0]
