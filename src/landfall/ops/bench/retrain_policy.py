"""Trainings run and skipped under `training.retrain: on_drift` over a run of landed days, with and without
drift, measured without a stack: each day's statistics are taken as preprocessing takes them
(`drift.summarise`), compared with the champion's reference (`drift.compare`) and decided on by the rule
the train DAG applies (`drift.training_decision`).

What it assumes, and says in its figures: a day that trains is promoted (its window becomes the
reference), which is what `every_landing` would also have paid a training for.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from landfall.pipeline.datagen import make_batch
from landfall.pipeline.drift import compare, reference_of, summarise, training_decision

SCENARIOS: dict[str, Any] = {
    "without drift": lambda day, days: 0.0,
    # The data moves twice, by steps that a training window of the moved data absorbs.
    "with drift": lambda day, days: 0.0 if day < days // 3 else (1.0 if day < 2 * days // 3 else 2.0),
}


def simulate(settings: Any, days: int, drift_of: Any, rows: int = 5000) -> dict[str, Any]:
    """Land `days` days of churn rows drifting by `drift_of(day, days)`; count what on_drift trains."""
    landing, monitoring, training = settings.landing, settings.monitoring, settings.training
    start = datetime(2026, 1, 1, tzinfo=UTC)
    history: list[dict[str, Any]] = []
    reference: dict[str, Any] | None = None
    trained_at: datetime | None = None
    trained, compare_s, reasons = [], [], {}
    for day in range(days):
        statistics = summarise(
            [make_batch(rows, seed=9000 + day, drift=drift_of(day, days))], landing, "binary"
        )
        history.append(statistics)
        now = start + timedelta(days=day)
        report: dict[str, Any] = {"verdict": "no reference", "reason": "no champion yet"}
        if reference is not None:
            started = time.perf_counter()
            report = compare(reference, statistics, landing, monitoring).as_dict()
            compare_s.append(time.perf_counter() - started)
        decision = training_decision("on_drift", report, trained_at, now, training.max_age_days)
        reasons[report["verdict"]] = reasons.get(report["verdict"], 0) + 1
        if decision.train:
            trained.append(day)
            reference = reference_of(history[-training.window_days :])
            trained_at = now
    return {
        "days": days,
        "trained": len(trained),
        "skipped": days - len(trained),
        "trained_days": trained,
        "verdicts": reasons,
        "drift_compare_ms_p50": round(sorted(compare_s)[len(compare_s) // 2] * 1000, 1)
        if compare_s
        else None,
    }


def trainings_under_on_drift(settings: Any, days: int = 30) -> dict[str, Any]:
    figures = {name: simulate(settings, days, drift_of) for name, drift_of in SCENARIOS.items()}
    figures["every_landing_trains"] = days
    figures["assumes"] = "a day that trains is promoted: its window becomes the reference"
    return {"retrain_on_drift": figures}
