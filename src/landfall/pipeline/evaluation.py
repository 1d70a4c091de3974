"""Scoring and the deploy gate: candidate and champion on the same held-out rows, and whether the
difference is more than sampling noise.

On ~1,000 held-out rows the standard error of an accuracy near 0.95 is about 0.007 - larger than a
typical `min_improvement`. So the gate asks two things of an improvement: that it clears the configured
floor, and that it survives a **paired bootstrap**: the same rows are resampled for both models, and the
lower end of the one-sided `confidence` interval of (candidate - champion) must be above zero. Paired,
because both models err on many of the same rows; an unpaired comparison would need far more data.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from landfall.core.pipeline_settings import DeploySettings
from landfall.pipeline.metrics import METRICS, Answers, log_loss_terms

_BLOCK = 64  # resamples drawn at once: bounded memory for any test size


def _per_row(truth: np.ndarray, answers: Answers, metric: str) -> np.ndarray | None:
    """The metric's per-row terms when it is a mean of them (its resample is a mean of rows), else None."""
    if metric == "accuracy":
        return (answers.predicted == truth).astype(np.float64)
    if metric in ("mae", "rmse"):
        errors = answers.predicted.astype(np.float64) - truth.astype(np.float64)
        return np.abs(errors) if metric == "mae" else errors**2
    if metric == "log_loss" and answers.probabilities is not None:
        return log_loss_terms(truth, answers)
    return None


def bootstrap_differences(
    truth: np.ndarray, candidate: Answers, champion: Answers, metric: str, samples: int, seed: int = 0
) -> np.ndarray:
    """`samples` paired resamples of how much better the candidate scores than the champion, in the
    metric's units and direction (positive: the candidate is better, for rmse too)."""
    rng = np.random.default_rng(seed)
    rows = len(truth)
    measure = METRICS[metric]
    ours, theirs = _per_row(truth, candidate, metric), _per_row(truth, champion, metric)
    if ours is not None and theirs is not None:  # vectorised: resamples are means of per-row terms
        finish = np.sqrt if metric == "rmse" else (lambda x: x)
        out = []
        for start in range(0, samples, _BLOCK):
            index = rng.integers(0, rows, (min(_BLOCK, samples - start), rows))
            out.append(measure.better(finish(ours[index].mean(axis=1)), finish(theirs[index].mean(axis=1))))
        return np.concatenate(out)
    out = np.empty(samples)
    for i in range(samples):
        index = rng.integers(0, rows, rows)
        pick = truth[index]
        out[i] = measure.better(
            measure.compute(pick, candidate.take(index)), measure.compute(pick, champion.take(index))
        )
    return out


@dataclass(frozen=True)
class Decision:
    should_deploy: bool
    new_score: float
    baseline_score: float
    improvement: float
    lower_bound: float | None  # of the improvement, one-sided at the gate's confidence; None: no champion
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def decide(
    metric: str,
    new_score: float,
    champion_score: float | None,
    lower_bound: float | None,
    gate: DeploySettings,
    trivial_score: float | None = None,
) -> Decision:
    """Deploy when the candidate clears the floor and beats the champion by more than the margin, with the
    paired bootstrap's lower bound of the improvement above zero. With no champion yet, it must beat
    `trivial_score` (what a model that learned nothing scores on the same rows) by the margin: a first
    model is crowned only when it learned something. "Beats" follows the metric's direction."""
    measure = METRICS[metric]
    baseline = champion_score if champion_score is not None else trivial_score
    improvement = 0.0 if baseline is None else round(measure.better(new_score, baseline), 6)
    direction = "above" if measure.higher_is_better else "below"

    def no(reason: str) -> Decision:
        return Decision(False, new_score, baseline or 0.0, improvement, lower_bound, reason)

    if not math.isfinite(new_score) or not math.isfinite(improvement):
        return no(
            f"{metric} {new_score} against {baseline} is not a finite comparison (an empty test split?)"
        )
    if gate.min_score is not None and measure.better(new_score, gate.min_score) <= 0:
        return no(f"{metric} {new_score:.4f} is not {direction} deploy.min_score {gate.min_score:.4f}")
    if champion_score is None:
        if trivial_score is not None and improvement <= gate.min_improvement:
            return no(
                f"{metric} {new_score:.4f} is not better than a model that learned nothing "
                f"({trivial_score:.4f} on the same rows) by more than deploy.min_improvement "
                f"{gate.min_improvement:.4f}"
            )
        return Decision(
            True,
            new_score,
            baseline or 0.0,
            improvement,
            None,
            f"{metric} {new_score:.4f} beats no champion yet"
            + ("" if trivial_score is None else f" and a model that learned nothing by {improvement:+.4f}"),
        )
    if improvement <= gate.min_improvement:
        return no(
            f"improvement {improvement:+.4f} in {metric} over the champion ({champion_score:.4f}) is not "
            f"above {gate.min_improvement:.4f}"
        )
    if lower_bound is None or lower_bound <= 0:
        shown = "unknown" if lower_bound is None else f"{lower_bound:+.4f}"
        return no(
            f"improvement {improvement:+.4f} in {metric} over the champion ({champion_score:.4f}) could be "
            f"sampling noise: the {gate.confidence:.0%} lower bound of the paired bootstrap is {shown}"
        )
    return Decision(
        True,
        new_score,
        champion_score,
        improvement,
        lower_bound,
        f"{metric} {new_score:.4f} beats champion {champion_score:.4f} by {improvement:+.4f} "
        f"({gate.confidence:.0%} lower bound {lower_bound:+.4f})",
    )


def lower_bound(
    truth: np.ndarray, candidate: Answers, champion: Answers, metric: str, gate: DeploySettings, seed: int = 0
) -> float:
    """The one-sided `gate.confidence` lower bound of the improvement (the (1 - confidence) percentile)."""
    differences = bootstrap_differences(truth, candidate, champion, metric, gate.bootstrap_samples, seed)
    return round(float(np.percentile(differences, (1 - gate.confidence) * 100)), 6)
