"""The MLflow pictures are drawn from the real predictions, without a display or a server."""

from __future__ import annotations

import io

import numpy as np
from sklearn.metrics import confusion_matrix

from landfall.pipeline import plots

TRUTH = np.array([0, 0, 0, 1, 1, 0, 1, 0])
PREDICTED = np.array([0, 1, 0, 1, 0, 0, 1, 0])
PROBABILITY = np.array([0.1, 0.7, 0.2, 0.9, 0.4, 0.3, 0.8, 0.05])


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def test_the_confusion_matrix_shows_the_counts_of_the_predictions():
    figure = plots.confusion_matrix_figure(TRUTH, PREDICTED, ("stays", "churns"))
    [axes] = figure.axes
    shown = [int(text.get_text()) for text in axes.texts]
    assert shown == confusion_matrix(TRUTH, PREDICTED).ravel().tolist()  # [[tn, fp], [fn, tp]]
    assert [label.get_text() for label in axes.get_xticklabels()] == ["stays", "churns"]
    assert _png(figure).startswith(b"\x89PNG")


def test_a_trial_logs_a_confusion_matrix_and_both_curves():
    figures = plots.classifier_figures(TRUTH, PREDICTED, PROBABILITY)
    assert set(figures) == {plots.CONFUSION_MATRIX, plots.ROC_CURVE, plots.PR_CURVE}
    roc_axes = figures[plots.ROC_CURVE].axes[0]
    assert "AUC = 0.93" in roc_axes.get_legend_handles_labels()[1][0]  # 14 of 15 pairs ranked right


def test_a_single_class_split_gets_no_curves_instead_of_a_crash():
    ones = np.ones(5, dtype=int)
    assert set(plots.classifier_figures(ones, ones, np.full(5, 0.9))) == {plots.CONFUSION_MATRIX}


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
