"""The MLflow pictures are drawn from the real predictions, without a display or a server."""

from __future__ import annotations

import io

import numpy as np
from sklearn.metrics import confusion_matrix

from landfall.pipeline import plots
from landfall.pipeline.metrics import Answers

TRUTH = np.array([0, 0, 0, 1, 1, 0, 1, 0])
PREDICTED = np.array([0, 1, 0, 1, 0, 0, 1, 0])
PROBABILITY = np.array([0.1, 0.7, 0.2, 0.9, 0.4, 0.3, 0.8, 0.05])
BINARY = Answers(PREDICTED, np.column_stack([1 - PROBABILITY, PROBABILITY]), (0, 1))


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def test_the_confusion_matrix_shows_the_counts_of_the_predictions():
    figure = plots.confusion_matrix_figure(TRUTH, PREDICTED, (0, 1))
    [axes] = figure.axes
    shown = [int(text.get_text()) for text in axes.texts]
    assert shown == confusion_matrix(TRUTH, PREDICTED).ravel().tolist()  # [[tn, fp], [fn, tp]]
    assert [label.get_text() for label in axes.get_xticklabels()] == ["0", "1"]
    assert _png(figure).startswith(b"\x89PNG")


def test_a_trial_logs_a_confusion_matrix_and_both_curves():
    figures = plots.trial_figures("binary", TRUTH, BINARY)
    assert set(figures) == {plots.CONFUSION_MATRIX, plots.ROC_CURVE, plots.PR_CURVE}
    roc_axes = figures[plots.ROC_CURVE].axes[0]
    assert "AUC = 0.93" in roc_axes.get_legend_handles_labels()[1][0]  # 14 of 15 pairs ranked right


def test_a_single_class_split_gets_no_curves_instead_of_a_crash():
    ones = np.ones(5, dtype=int)
    answers = Answers(ones, np.tile([0.1, 0.9], (5, 1)), (0, 1))
    assert set(plots.trial_figures("binary", ones, answers)) == {plots.CONFUSION_MATRIX}


def test_a_multiclass_confusion_matrix_has_a_row_and_column_per_class():
    truth = np.array(["gold", "silver", "bronze", "gold", "silver"], dtype=object)
    predicted = np.array(["gold", "gold", "bronze", "gold", "silver"], dtype=object)
    classes = ("bronze", "gold", "silver")
    figures = plots.trial_figures(
        "multiclass", truth, Answers(predicted, np.eye(3)[[1, 1, 0, 1, 2]], classes)
    )
    [axes] = figures[plots.CONFUSION_MATRIX].axes
    assert [label.get_text() for label in axes.get_xticklabels()] == list(classes)
    assert [int(text.get_text()) for text in axes.texts] == [1, 0, 0, 0, 2, 0, 0, 1, 1]


def test_a_regression_trial_draws_predicted_vs_actual_and_residuals():
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    figures = plots.trial_figures("regression", truth, Answers(np.array([1.5, 2.0, 2.5, 4.5])))
    assert set(figures) == {plots.PREDICTED_VS_ACTUAL, plots.RESIDUALS}
    heights = [patch.get_height() for patch in figures[plots.RESIDUALS].axes[0].patches]
    assert sum(heights) == 4  # every row's residual is in the histogram


def test_the_comparison_shows_both_models_only_when_there_is_a_champion():
    candidate = {"accuracy": 0.97, "f1": 0.9, "roc_auc": 0.99}
    day_one = plots.comparison_figure(candidate, None, "deploy").axes[0]
    later = plots.comparison_figure(candidate, {"accuracy": 0.95, "f1": 0.88, "roc_auc": 0.98}, "skip").axes[
        0
    ]
    assert [text.get_text() for text in day_one.get_legend().get_texts()] == ["candidate"]
    assert [text.get_text() for text in later.get_legend().get_texts()] == ["candidate", "champion"]
    assert "skip" in later.get_title()
    assert [round(bar.get_height(), 2) for bar in later.patches][:3] == [0.97, 0.9, 0.99]


def test_the_drift_picture_shows_each_drifting_feature_reference_against_the_day(settings):
    from landfall.pipeline import drift
    from landfall.pipeline.datagen import make_batch

    reference = drift.reference_of([drift.summarise([make_batch(3000, seed=1)], settings.landing, "binary")])
    moved = drift.summarise([make_batch(3000, seed=2, drift=1.5)], settings.landing, "binary")
    report = drift.compare(reference, moved, settings.landing, settings.monitoring).as_dict()
    figure = plots.drift_figure(reference, moved, report, "2026-12-01")
    titles = [axes.get_title() for axes in figure.axes]
    assert len(titles) == min(len(report["drifted"]), plots.DRIFT_FEATURES_SHOWN) >= 2
    assert all(title.endswith("(drifted)") for title in titles)
    assert {title.split(":")[0] for title in titles} <= set(report["drifted"])
    assert all(len(axes.get_legend().get_texts()) == 2 for axes in figure.axes)  # reference and the day

    stable = drift.summarise([make_batch(3000, seed=3)], settings.landing, "binary")
    calm = drift.compare(reference, stable, settings.landing, settings.monitoring).as_dict()
    titles = [axes.get_title() for axes in plots.drift_figure(reference, stable, calm, "d").axes]
    worst = max(calm["features"], key=lambda name: calm["features"][name]["psi"])
    assert titles[0].startswith(f"{worst}: PSI") and not any("(drifted)" in t for t in titles)
