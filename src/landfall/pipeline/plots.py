"""Pictures for MLflow: what people look at rather than read.

Each trial logs the pictures of its task: a confusion matrix (and, binary, ROC / precision-recall
curves) for a classifier; predicted vs actual and the residuals for a regressor. The evaluation logs the
candidate-vs-champion comparison and the same pictures of both on the held-out rows. Figures are
drawn with matplotlib's Agg backend (no display) and returned, so they can be tested without MLflow;
`log_figures` sends them to a run. Each drift report with a reference gets one picture of its drifting
features, reference vs day (`drift_figure`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from landfall.pipeline.metrics import Answers

PLOTS_DIR = "plots"
CONFUSION_MATRIX = f"{PLOTS_DIR}/confusion_matrix.png"
ROC_CURVE = f"{PLOTS_DIR}/roc_curve.png"
PR_CURVE = f"{PLOTS_DIR}/precision_recall_curve.png"
CANDIDATE_VS_CHAMPION = f"{PLOTS_DIR}/candidate_vs_champion.png"
PREDICTED_VS_ACTUAL = f"{PLOTS_DIR}/predicted_vs_actual.png"
RESIDUALS = f"{PLOTS_DIR}/residuals.png"


def has_both_classes(truth: np.ndarray) -> bool:
    """ROC/PR curves and AUC need both labels in the split; a one-class split gets none."""
    return len(np.unique(truth)) > 1


def _blank_figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)  # worker processes have no display
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _figure(width: float = 4.5, height: float = 4.0) -> tuple[Any, Any]:
    figure = _blank_figure(width, height)
    return figure, figure.add_subplot()


def confusion_matrix_figure(truth: np.ndarray, predicted: np.ndarray, classes: Sequence[Any]) -> Any:
    from sklearn.metrics import ConfusionMatrixDisplay

    side = max(4.5, 0.5 * len(classes) + 2.5)
    figure, axes = _figure(side, side - 0.5)
    codes = {value: index for index, value in enumerate(classes)}
    ConfusionMatrixDisplay.from_predictions(
        [codes.get(value, -1) for value in truth],
        [codes.get(value, -1) for value in predicted],
        labels=list(range(len(classes))),
        display_labels=[str(value) for value in classes],
        ax=axes,
        colorbar=False,
        cmap="Blues",
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
    values = [*candidate.values(), *(champion or {}).values()]
    if all(0.0 <= value <= 1.0 for value in values):  # shares (accuracy, AUC): on one 0-1 scale
        axes.set_ylim(0, 1.1)
    axes.set_title(f"Candidate vs champion: {decision}", fontsize=10)
    axes.legend(loc="lower right")
    return figure


def predicted_vs_actual_figure(truth: np.ndarray, predicted: Mapping[str, np.ndarray]) -> Any:
    """Each model's predictions against the truth, with the line a perfect model would sit on."""
    figure, axes = _figure()
    for name, values in predicted.items():
        axes.scatter(truth, values, s=6, alpha=0.5, label=name)
    low, high = float(np.min(truth)), float(np.max(truth))
    axes.plot([low, high], [low, high], linestyle=":", color="grey", label="perfect")
    axes.set_xlabel("actual")
    axes.set_ylabel("predicted")
    axes.set_title("Predicted vs actual (held-out split)")
    axes.legend(loc="upper left")
    return figure


def residuals_figure(truth: np.ndarray, predicted: np.ndarray) -> Any:
    figure, axes = _figure()
    axes.hist(predicted - truth, bins=40, color="tab:blue")
    axes.axvline(0.0, linestyle=":", color="grey")
    axes.set_xlabel("predicted - actual")
    axes.set_title("Residuals (held-out split)")
    return figure


def trial_figures(task: str, truth: np.ndarray, answers: Answers) -> dict[str, Any]:
    """The figures every trial logs, by artifact path (curves only when both classes are present)."""
    if task == "regression":
        return {
            PREDICTED_VS_ACTUAL: predicted_vs_actual_figure(truth, {"model": answers.predicted}),
            RESIDUALS: residuals_figure(truth, answers.predicted),
        }
    classes = list(answers.classes or np.unique(truth))
    figures = {CONFUSION_MATRIX: confusion_matrix_figure(truth, answers.predicted, classes)}
    if task == "binary" and has_both_classes(truth) and answers.probabilities is not None:
        curves = {"model": (truth == classes[-1], answers.probabilities[:, -1])}
        figures[ROC_CURVE] = roc_figure(curves)
        figures[PR_CURVE] = precision_recall_figure(curves)
    return figures


def evaluation_figures(task: str, truth: np.ndarray, answers: Mapping[str, Answers]) -> dict[str, Any]:
    """The evaluation's pictures of candidate (and champion) on the same held-out rows."""
    if task == "regression":
        return {
            f"{PLOTS_DIR}/predicted_vs_actual_candidate_vs_champion.png": predicted_vs_actual_figure(
                truth, {name: found.predicted for name, found in answers.items()}
            )
        }
    candidate = answers["candidate"]
    if task == "multiclass":
        classes = list(candidate.classes or np.unique(truth))
        return {
            f"{PLOTS_DIR}/confusion_matrix_candidate.png": confusion_matrix_figure(
                truth, candidate.predicted, classes
            )
        }
    if not has_both_classes(truth):
        return {}
    curves = {
        name: (truth == (found.classes or (0, 1))[-1], found.probabilities[:, -1])
        for name, found in answers.items()
        if found.probabilities is not None
    }
    return {f"{PLOTS_DIR}/roc_candidate_vs_champion.png": roc_figure(curves)}


def log_figures(run_id: str, figures: Mapping[str, Any]) -> None:
    import mlflow

    client = mlflow.MlflowClient()
    for path, figure in figures.items():
        client.log_figure(run_id, figure, path)


DRIFT = f"{PLOTS_DIR}/drift.png"
DRIFT_FEATURES_SHOWN = 6


def drift_figure(
    reference: Mapping[str, Any], day: Mapping[str, Any], report: Mapping[str, Any], partition: str
) -> Any:
    """The drifting features, reference vs day, one panel each: for a number, the two samples'
    histograms on the same bins; for a category, the two share bars. With none drifting, the features of
    the largest PSI are shown, so the picture of a stable day says how far it was from moving."""
    from landfall.pipeline.drift import CategoricalSummary, summary_of

    features = report.get("features") or {}
    ranked = sorted((n for n in features if "psi" in features[n]), key=lambda n: -features[n]["psi"])
    shown = (list(report.get("drifted") or []) or ranked)[:DRIFT_FEATURES_SHOWN]
    figure = _blank_figure(4.0 * max(1, len(shown)), 3.4)
    for index, name in enumerate(shown, 1):
        axes = figure.add_subplot(1, max(1, len(shown)), index)
        ref, now = summary_of(reference["features"][name]), summary_of(day["features"][name])
        if isinstance(ref, CategoricalSummary) and isinstance(now, CategoricalSummary):
            before, after = ref.shares(), now.shares()
            categories = sorted(set(before) | set(after))
            positions = np.arange(len(categories))
            axes.bar(positions - 0.2, [before.get(c, 0.0) for c in categories], 0.4, label="reference")
            axes.bar(positions + 0.2, [after.get(c, 0.0) for c in categories], 0.4, label=partition)
            axes.set_xticks(positions, categories, rotation=30, fontsize=7)
        else:
            samples = [np.asarray(s.sample, dtype="float64") for s in (ref, now)]  # type: ignore[union-attr]
            joined = np.concatenate(samples)
            bins = np.histogram_bin_edges(joined, bins=30) if len(joined) else 10
            axes.hist(samples[0], bins=bins, density=True, alpha=0.55, label="reference")
            axes.hist(samples[1], bins=bins, density=True, alpha=0.55, label=partition)
        mark = " (drifted)" if features[name].get("drifted") else ""
        axes.set_title(f"{name}: PSI {features[name]['psi']}{mark}", fontsize=9)
        axes.legend(fontsize=7)
    figure.suptitle(f"{partition}: {report.get('verdict')} against the champion's window", fontsize=10)
    return figure
