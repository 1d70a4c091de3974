"""Scoring and the deploy gate: candidate and champion on the same held-out rows, and whether the
difference is more than sampling noise.

On ~1,000 held-out rows the standard error of an accuracy near 0.95 is about 0.007 - larger than a
typical `min_improvement`. So the gate asks two things of an improvement: that it clears the configured
floor, and that it survives a **paired bootstrap**: the same rows are resampled for both models, and the
lower end of the one-sided `confidence` interval of (candidate - champion) must be above zero. Paired,
because both models err on many of the same rows; an unpaired comparison would need far more data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from landfall.core.pipeline_settings import DeploySettings
from landfall.pipeline.plots import has_both_classes

_BLOCK = 64  # resamples drawn at once: bounded memory for any test size


def metrics_of(truth: np.ndarray, predicted: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "f1": float(f1_score(truth, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(truth, probability)) if has_both_classes(truth) else 0.5,
    }


@dataclass(frozen=True)
class Scored:
    """One model's answers on the held-out rows."""

    predicted: np.ndarray
    probability: np.ndarray


def _metric(name: str) -> Callable[[np.ndarray, Scored], float]:
    def score(truth: np.ndarray, scored: Scored) -> float:
        return metrics_of(truth, scored.predicted, scored.probability)[name]

    return score


def bootstrap_differences(
    truth: np.ndarray, candidate: Scored, champion: Scored, metric: str, samples: int, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = len(truth)
    if metric == "accuracy":  # vectorised: the mean of per-row (correct_c - correct_h) over each resample
        per_row = (candidate.predicted == truth).astype(np.float64) - (champion.predicted == truth)
        out = []
        for start in range(0, samples, _BLOCK):
            index = rng.integers(0, rows, (min(_BLOCK, samples - start), rows))
            out.append(per_row[index].mean(axis=1))
        return np.concatenate(out)
    score = _metric(metric)
    out = np.empty(samples)
    for i in range(samples):
        index = rng.integers(0, rows, rows)
        pick = truth[index]
        out[i] = score(pick, Scored(candidate.predicted[index], candidate.probability[index])) - score(
            pick, Scored(champion.predicted[index], champion.probability[index])
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
    new_score: float, baseline_score: float | None, lower_bound: float | None, gate: DeploySettings
) -> Decision:
    """Deploy when the candidate clears the floor, beats the champion by more than the margin, and the
    paired bootstrap's lower bound of the improvement is above zero."""
    baseline = 0.0 if baseline_score is None else baseline_score
    improvement = round(new_score - baseline, 6)

    def no(reason: str) -> Decision:
        return Decision(False, new_score, baseline, improvement, lower_bound, reason)

    if new_score <= gate.min_score:
        return no(f"score {new_score:.4f} is not above the floor {gate.min_score:.4f}")
    if baseline_score is None:
        return Decision(
            True,
            new_score,
            baseline,
            improvement,
            None,
            f"score {new_score:.4f} beats no champion yet by {improvement:+.4f}",
        )
    if improvement <= gate.min_improvement:
        return no(
            f"improvement {improvement:+.4f} over the champion ({baseline:.4f}) is not above "
            f"{gate.min_improvement:.4f}"
        )
    if lower_bound is None or lower_bound <= 0:
        shown = "unknown" if lower_bound is None else f"{lower_bound:+.4f}"
        return no(
            f"improvement {improvement:+.4f} over the champion ({baseline:.4f}) could be sampling noise: "
            f"the {gate.confidence:.0%} lower bound of the paired bootstrap is {shown}"
        )
    return Decision(
        True,
        new_score,
        baseline,
        improvement,
        lower_bound,
        f"score {new_score:.4f} beats champion {baseline:.4f} by {improvement:+.4f} "
        f"({gate.confidence:.0%} lower bound {lower_bound:+.4f})",
    )


def lower_bound(
    truth: np.ndarray, candidate: Scored, champion: Scored, metric: str, gate: DeploySettings, seed: int = 0
) -> float:
    """The one-sided `gate.confidence` lower bound of the improvement (the (1 - confidence) percentile)."""
    differences = bootstrap_differences(truth, candidate, champion, metric, gate.bootstrap_samples, seed)
    return round(float(np.percentile(differences, (1 - gate.confidence) * 100)), 6)
