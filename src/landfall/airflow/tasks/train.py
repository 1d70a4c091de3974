"""The bodies of the train DAG's tasks: the trial grid, each trial's argv, the local backend, the reduce."""

from __future__ import annotations

import logging
from typing import Any

from landfall.core.settings import get_settings

log = logging.getLogger(__name__)


def hyperparameter_trials() -> list[dict[str, Any]]:
    from landfall.pipeline.training.trials import trial_grid

    trials = trial_grid(get_settings().training.grid)
    log.info("%d trials: %s", len(trials), [t["trial"] for t in trials])
    return trials


def pick_best(results: list[dict[str, Any] | None], dataset: dict[str, Any]) -> dict[str, Any]:
    """The best trial on the validation split; the test split travels on for the evaluation."""
    from landfall.pipeline.training.trials import select_best

    metric = get_settings().training.metric
    best = select_best(results, metric)
    failed = sum(1 for r in results if not r)
    log.info(
        "Best of %d trials (%d failed): %s validation %s=%.4f",
        len(results),
        failed,
        best["params"],
        metric,
        best["metrics"][metric],
    )
    return {
        **best,
        "metric": metric,
        "version": dataset.get("version"),
        "train_uri": dataset["train_uri"],
        "validation_uri": dataset["validation_uri"],
        "test_uri": dataset["test_uri"],
        "canary_uri": dataset.get("canary_uri"),
        "trials": len(results),
        "failed_trials": failed,
    }
