"""Hyperparameter trials (cross product of the configured grid), best-trial selection and the deploy gate."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from landfall.settings import DeploySettings, TrialGrid


def trial_grid(grid: TrialGrid) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in a stable order, each with a readable `trial` name."""
    names = list(type(grid).model_fields)
    trials = []
    for values in itertools.product(*(getattr(grid, name) for name in names)):
        params = dict(zip(names, values, strict=True))
        params["trial"] = "-".join(f"{name}={value}" for name, value in params.items())
        trials.append(params)
    return trials


class NoSuccessfulTrial(RuntimeError):
    """Every trial failed; nothing can be proposed."""


def select_best(results: Iterable[dict[str, Any] | None], metric: str) -> dict[str, Any]:
    """The trial with the highest `metric`; failed trials (None or without the metric) are skipped."""
    finished = [r for r in results if r and isinstance(r.get("metrics", {}).get(metric), int | float)]
    if not finished:
        raise NoSuccessfulTrial(f"no trial finished with a {metric!r} metric; see the train_trial task logs")
    # Ties go to the earliest-registered run id, so a re-run picks the same winner.
    return max(finished, key=lambda r: (r["metrics"][metric], _neg(r["run_id"])))


def _neg(text: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in text)


@dataclass(frozen=True)
class Decision:
    should_deploy: bool
    new_score: float
    baseline_score: float
    improvement: float
    reason: str


def decide(new_score: float, baseline_score: float | None, gate: DeploySettings) -> Decision:
    """Deploy when the candidate clears the floor and beats the champion by more than the margin."""
    baseline = 0.0 if baseline_score is None else baseline_score
    improvement = round(new_score - baseline, 6)
    if new_score <= gate.min_score:
        return Decision(
            False,
            new_score,
            baseline,
            improvement,
            f"score {new_score:.4f} is not above the floor {gate.min_score:.4f}",
        )
    if improvement <= gate.min_improvement:
        return Decision(
            False,
            new_score,
            baseline,
            improvement,
            f"improvement {improvement:+.4f} over the champion ({baseline:.4f}) is not above "
            f"{gate.min_improvement:.4f}",
        )
    who = "no champion yet" if baseline_score is None else f"champion {baseline:.4f}"
    return Decision(
        True, new_score, baseline, improvement, f"score {new_score:.4f} beats {who} by {improvement:+.4f}"
    )
