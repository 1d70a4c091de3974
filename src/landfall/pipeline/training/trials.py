"""Hyperparameter trials: the cross product of the configured grid, and the best of their results."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from landfall.pipeline.metrics import METRICS


def trial_grid(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in a stable order, each with a readable `trial` name (an
    empty grid is one trial of the trainer's defaults)."""
    names = list(grid)
    trials = []
    for values in itertools.product(*(grid[name] for name in names)):
        params = dict(zip(names, values, strict=True))
        params["trial"] = "-".join(f"{name}={value}" for name, value in params.items()) or "defaults"
        trials.append(params)
    return trials


class NoSuccessfulTrial(RuntimeError):
    """Every trial failed; nothing can be proposed."""


def select_best(results: Iterable[dict[str, Any] | None], metric: str) -> dict[str, Any]:
    """The trial with the best `metric` (in its direction); failed trials (None or without the metric)
    are skipped, and a trial fitted on fewer than two label classes is never a candidate."""
    results = [r for r in results if r]
    one_class = [r for r in results if int(r.get("classes", 2)) < 2]
    finished = [
        r for r in results if r not in one_class and isinstance(r.get("metrics", {}).get(metric), int | float)
    ]
    if not finished and one_class:
        classes = sorted({int(r["classes"]) for r in one_class})
        raise NoSuccessfulTrial(
            f"no candidate: {len(one_class)} trial(s) had {' or '.join(map(str, classes))} label class(es) "
            f"to learn from ({one_class[0].get('refused') or 'fitted on one class'}); a model of one class "
            "is never a candidate. Land data with both classes."
        )
    if not finished:
        raise NoSuccessfulTrial(f"no trial finished with a {metric!r} metric; see the train_trial task logs")
    # Ties go to the earliest-registered run id, so a re-run picks the same winner.
    sign = 1.0 if METRICS[metric].higher_is_better else -1.0
    return max(finished, key=lambda r: (sign * r["metrics"][metric], _neg(r["run_id"])))


def _neg(text: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in text)
