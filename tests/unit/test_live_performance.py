"""Live accuracy's pure rules: kept predictions (written and read back by the real prediction log) joined
with late labels, scored per version, and the verdict on the champion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from landfall.core.pipeline_settings import DeploySettings
from landfall.pipeline.live import join_labels, judge_champion, logged_answers, scores_by_version
from landfall.pipeline.metrics import METRICS, Answers, truth_of
from landfall.serving.prediction_log import PredictionLog, read_log

GATE = DeploySettings(min_score=0.60, min_improvement=0.01, confidence=0.95, bootstrap_samples=500)
NOW = datetime.now(UTC)  # the log stamps answers with the real time: labels are placed around it


def _kept(answers: list[tuple[str, int, float]], version: str = "3") -> pd.DataFrame:
    """Rows answered by `version`, as the service logs them: (row id, predicted class, P(class 1))."""
    files: dict[str, bytes] = {}
    log = PredictionLog(
        "churn", "churn", files.__setitem__, "churn/predictions", "customer_id", 10_000, 60.0, 10_000
    )
    for row_id, predicted, positive in answers:
        answer = {
            "version": version,
            "run_id": "r",
            "predictions": [predicted],
            "probabilities": [{"0": 1 - positive, "1": positive}],
        }
        log.record("req", [{"customer_id": row_id, "tenure": 3}], answer)
    log.flush()
    return pd.DataFrame([record for body in files.values() for record in read_log(body)])


def _labels(*rows: tuple[str, int, datetime]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "label", "landed_at"])


def test_the_newest_label_of_an_id_wins_and_unknown_early_and_missing_ones_are_counted():
    kept = _kept([("a", 1, 0.9), ("b", 0, 0.2), ("c", 1, 0.7)])
    later, much_later = NOW + timedelta(days=1), NOW + timedelta(days=2)
    labels = _labels(
        ("a", 0, later),
        ("a", 1, much_later),  # a correction: this one counts
        ("b", 0, NOW - timedelta(days=1)),  # landed before the answer: cannot be its outcome
        ("zz", 1, later),  # no such prediction
    )
    labelled = join_labels(kept, labels)
    assert labelled.rows[["row_id", "label"]].values.tolist() == [["a", 1]]
    assert labelled.counts() == {
        "labelled_rows": 1,
        "unknown_ids": 1,
        "superseded_labels": 1,
        "early_labels": 1,
        "unlabelled": 1,  # c
    }


def test_a_retried_request_counts_once_per_version():
    kept = pd.concat([_kept([("a", 1, 0.9)]), _kept([("a", 1, 0.9)]), _kept([("a", 0, 0.1)], "4")])
    labelled = join_labels(kept, _labels(("a", 1, NOW + timedelta(days=1))))
    assert sorted(labelled.rows["model_version"]) == ["3", "4"]


def test_a_labels_file_without_its_columns_is_refused_naming_them():
    with pytest.raises(ValueError, match=r"no column\(s\) \['landed_at'\]"):
        join_labels(_kept([("a", 1, 0.9)]), pd.DataFrame({"id": ["a"], "label": [1]}))


def test_logged_answers_score_as_the_model_answered():
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 2, 300)
    positive = np.clip(truth * 0.6 + rng.random(300) * 0.5, 0, 1)
    predicted = (positive > 0.5).astype(int)
    kept = _kept(
        [(f"id{i}", int(p), float(q)) for i, (p, q) in enumerate(zip(predicted, positive, strict=True))]
    )
    labels = _labels(*[(f"id{i}", int(t), NOW + timedelta(days=1)) for i, t in enumerate(truth)])
    rows = join_labels(kept, labels).rows
    direct = Answers(predicted.astype(object), np.column_stack([1 - positive, positive]), (0, 1))
    logged = logged_answers(rows, "binary")
    assert logged.classes == (0, 1)  # the JSON keys "0", "1" matched back to the labels' integers
    for metric in ("accuracy", "roc_auc", "log_loss"):
        expected = METRICS[metric].compute(truth_of(truth, "binary"), direct)
        assert METRICS[metric].compute(truth_of(rows["label"].tolist(), "binary"), logged) == pytest.approx(
            expected
        )
    [score] = scores_by_version(join_labels(kept, labels), "binary", "accuracy")
    assert (score.version, score.rows) == ("3", 300)
    assert score.score == pytest.approx(float((predicted == truth).mean()), abs=1e-6)


def _answers(predicted: np.ndarray) -> Answers:
    positive = predicted.astype(float) * 0.8 + 0.1
    return Answers(predicted.astype(object), np.column_stack([1 - positive, positive]), (0, 1))


def _truth_and_models(rows: int, champion_right: float, previous_right: float, seed: int = 1):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, rows)
    champion = np.where(rng.random(rows) < champion_right, truth, 1 - truth)
    previous = np.where(rng.random(rows) < previous_right, truth, 1 - truth)
    return truth_of(truth, "binary"), _answers(champion), _answers(previous)


def test_too_few_labelled_rows_give_no_verdict():
    truth, champion, previous = _truth_and_models(50, 0.1, 0.95)
    verdict = judge_champion("accuracy", truth, champion, previous, GATE, min_labelled_rows=200)
    assert verdict.verdict == "too_few" and not verdict.rollback
    assert verdict.reason == "50 labelled rows; monitoring.min_labelled_rows is 200"


def test_a_champion_below_the_floor_is_rolled_back_naming_its_live_figure():
    truth, champion, _ = _truth_and_models(1000, 0.5, 0.9)
    verdict = judge_champion("accuracy", truth, champion, None, GATE, min_labelled_rows=200)
    assert verdict.rollback
    assert f"live accuracy {verdict.champion_score:.4f} on 1000 labelled rows is below" in verdict.reason


def test_a_previous_champion_clearly_better_on_the_same_rows_brings_a_rollback():
    truth, champion, previous = _truth_and_models(2000, 0.75, 0.92)
    verdict = judge_champion("accuracy", truth, champion, previous, GATE, min_labelled_rows=200)
    assert verdict.rollback, verdict.reason
    assert verdict.previous_score > verdict.champion_score + GATE.min_improvement
    assert verdict.lower_bound > 0


def test_a_previous_champion_better_only_by_noise_keeps_the_champion():
    truth, champion, previous = _truth_and_models(300, 0.90, 0.905, seed=7)
    verdict = judge_champion("accuracy", truth, champion, previous, GATE, min_labelled_rows=200)
    assert verdict.verdict == "keep", verdict.reason


def test_for_a_metric_where_lower_is_better_a_worse_error_is_the_one_rolled_back():
    rng = np.random.default_rng(3)
    truth = rng.normal(50, 10, 1000)
    champion, previous = Answers(truth + rng.normal(0, 8, 1000)), Answers(truth + rng.normal(0, 2, 1000))
    gate = DeploySettings(min_score=None, min_improvement=0.5, confidence=0.95, bootstrap_samples=500)
    verdict = judge_champion("rmse", truth, champion, previous, gate, min_labelled_rows=100)
    assert verdict.rollback and verdict.previous_score < verdict.champion_score
    swapped = judge_champion("rmse", truth, previous, champion, gate, min_labelled_rows=100)
    assert swapped.verdict == "keep"


def test_an_id_answered_again_after_its_label_keeps_its_earlier_answer_judged():
    """Routine re-scoring: day 1's answer is what the label landing on day 5 judges; day 6's waits for a
    later label (and the label is not counted as early)."""
    first, again = _kept([("a", 1, 0.9)]), _kept([("a", 0, 0.2)])
    first["answered_at"] = (NOW - timedelta(days=5)).isoformat()
    again["answered_at"] = (NOW + timedelta(days=1)).isoformat()
    labelled = join_labels(pd.concat([first, again], ignore_index=True), _labels(("a", 1, NOW)))
    assert labelled.rows[["row_id", "prediction", "label"]].values.tolist() == [["a", 1, 1]]
    assert labelled.early_labels == 0


def test_a_window_of_one_outcome_gives_no_verdict_for_a_metric_that_needs_two():
    truth = truth_of([1] * 500, "binary")
    answers = _answers(np.ones(500, dtype=int))
    verdict = judge_champion("roc_auc", truth, answers, None, GATE, min_labelled_rows=200)
    assert verdict.verdict == "undecided" and not verdict.rollback
    assert "one outcome only" in verdict.reason
    # Accuracy can judge it: every answer right.
    assert judge_champion("accuracy", truth, answers, None, GATE, min_labelled_rows=200).verdict == "keep"


def test_a_ceiling_metric_above_its_min_score_is_rolled_back():
    rng = np.random.default_rng(5)
    truth = rng.normal(50, 10, 400)
    gate = DeploySettings(min_score=5.0, min_improvement=0.5, confidence=0.95, bootstrap_samples=500)
    far = judge_champion("rmse", truth, Answers(truth + rng.normal(0, 8, 400)), None, gate, 100)
    assert far.rollback and "is above deploy.min_score 5.0000" in far.reason
    near = judge_champion("rmse", truth, Answers(truth + rng.normal(0, 2, 400)), None, gate, 100)
    assert near.verdict == "keep"


def test_a_margin_over_min_improvement_that_the_bootstrap_cannot_confirm_keeps_the_champion():
    """220 rows: the previous champion is right on 6 rows the champion missed and wrong on 2 it got,
    +0.018 in accuracy (over min_improvement 0.01), but the paired bootstrap's lower bound is below 0."""
    rng = np.random.default_rng(11)
    truth = rng.integers(0, 2, 220)
    champion = truth.copy()
    champion[:20] = 1 - truth[:20]  # 20 misses
    previous = champion.copy()
    previous[:6] = truth[:6]  # fixes 6 of them
    previous[100:102] = 1 - truth[100:102]  # breaks 2 others
    verdict = judge_champion(
        "accuracy", truth_of(truth, "binary"), _answers(champion), _answers(previous), GATE, 200
    )
    assert verdict.previous_score - verdict.champion_score > GATE.min_improvement
    assert verdict.lower_bound <= 0
    assert verdict.verdict == "keep" and "lower bound" in verdict.reason
