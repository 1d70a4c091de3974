"""Pictures for MLflow: what people look at rather than read.

Each trial logs a confusion matrix and ROC / precision-recall curves; the evaluation logs the
candidate-vs-champion comparison. Figures are drawn with matplotlib's Agg backend (no display) and
returned, so they can be tested without MLflow; `log_figures` sends them to a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

PLOTS_DIR = "plots"
CONFUSION_MATRIX = f"{PLOTS_DIR}/confusion_matrix.png"
ROC_CURVE = f"{PLOTS_DIR}/roc_curve.png"
PR_CURVE = f"{PLOTS_DIR}/precision_recall_curve.png"
CANDIDATE_VS_CHAMPION = f"{PLOTS_DIR}/candidate_vs_champion.png"


def has_both_classes(truth: np.ndarray) -> bool:
    """ROC/PR curves and AUC need both labels in the split; a one-class split gets none."""
    return len(np.unique(truth)) > 1


def _figure(width: float = 4.5, height: float = 4.0) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)  # worker processes have no display
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return figure, figure.add_subplot()


def confusion_matrix_figure(truth: np.ndarray, predicted: np.ndarray, labels: tuple[str, str]) -> Any:
    from sklearn.metrics import ConfusionMatrixDisplay

    figure, axes = _figure()
    ConfusionMatrixDisplay.from_predictions(
        truth, predicted, labels=[0, 1], display_labels=list(labels), ax=axes, colorbar=False, cmap="Blues"
    )
    axes.set_title("Confusion matrix (held-out split)")
    return figure


def roc_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Any:
    """ROC curves of one or more models, `{name: (truth, probability)}`, on one plot."""
    from sklearn.metrics import RocCurveDisplay

    figure, axes = _figure()
    for name, (truth, probability) in curves.items():
        RocCurveDisplay.from_predictions(truth, probability, name=name, ax=axes)
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    axes.set_title("ROC curve (held-out split)")
    axes.legend(loc="lower right")
    return figure


def precision_recall_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Any:
    from sklearn.metrics import PrecisionRecallDisplay

    figure, axes = _figure()
    for name, (truth, probability) in curves.items():
        PrecisionRecallDisplay.from_predictions(truth, probability, name=name, ax=axes)
    axes.set_title("Precision-recall curve (held-out split)")
    axes.legend(loc="lower left")
    return figure


def comparison_figure(
    candidate: Mapping[str, float], champion: Mapping[str, float] | None, decision: str
) -> Any:
    """Bars of each metric for candidate and champion (champion missing on day one)."""
    names = list(candidate)
    figure, axes = _figure(6.0, 4.0)
    positions = np.arange(len(names))
    width = 0.38
    bars = axes.bar(positions - width / 2, [candidate[n] for n in names], width, label="candidate")
    axes.bar_label(bars, fmt="%.3f", fontsize=8)
    if champion:
        bars = axes.bar(positions + width / 2, [champion.get(n, 0.0) for n in names], width, label="champion")
        axes.bar_label(bars, fmt="%.3f", fontsize=8)
    axes.set_xticks(positions, names)
    axes.set_ylim(0, 1.1)
    axes.set_title(f"Candidate vs champion: {decision}", fontsize=10)
    axes.legend(loc="lower right")
    return figure


def classifier_figures(truth: np.ndarray, predicted: np.ndarray, probability: np.ndarray) -> dict[str, Any]:
    """The figures every trial logs, by artifact path (curves only when both classes are present)."""
    figures = {CONFUSION_MATRIX: confusion_matrix_figure(truth, predicted, ("stays", "churns"))}
    if has_both_classes(truth):
        curves = {"model": (truth, probability)}
        figures[ROC_CURVE] = roc_figure(curves)
        figures[PR_CURVE] = precision_recall_figure(curves)
    return figures


def log_figures(run_id: str, figures: Mapping[str, Any]) -> None:
    import mlflow

    client = mlflow.MlflowClient()
    for path, figure in figures.items():
        client.log_figure(run_id, figure, path)
