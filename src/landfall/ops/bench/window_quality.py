"""Training on one day against training on a window of days: fit time and accuracy on the newest day's
held-out rows, on the demo's data generator with and without drift between days.

Runs the pipeline's own pieces (preprocessing, the stride reader, the trainer's model) on local files,
without the stack: the figures compare the two training sets, not the orchestration around them.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from landfall.core.settings import Settings
from landfall.pipeline.datagen import make_batch
from landfall.pipeline.metrics import metrics_of
from landfall.pipeline.prepare import prepare
from landfall.pipeline.training.estimators import mlp
from landfall.pipeline.training.trainer import answer_split
from landfall.pipeline.window import read_sampled

PARAMS = {"learning_rate": 0.01, "batch_size": 256, "optimizer": "adam", "hidden_units": 32}


def window_vs_one_day(
    settings: Settings, days: int = 7, rows: int = 5000, drift_per_day: tuple[float, ...] = (0.0, 0.15)
) -> dict[str, Any]:
    """For each drift step: the same model fitted on the newest day alone and on all `days` days, both
    scored on the newest day's test split."""
    training = settings.training
    results: dict[str, Any] = {}
    for step in drift_per_day:
        with tempfile.TemporaryDirectory(prefix="landfall-window-bench-") as scratch:
            splits = []
            for day in range(days):
                raw = Path(scratch) / f"raw-{day}.parquet"
                make_batch(rows, seed=600 + day, drift=step * day).to_parquet(raw, index=False)
                out = Path(scratch) / f"day-{day}"
                out.mkdir()
                prepared = prepare(
                    [raw],
                    settings.landing,
                    training.validation_fraction,
                    training.test_fraction,
                    1,
                    out,
                )
                splits.append(prepared.files)
            test = read_sampled([str(splits[-1]["test"])])
            arms = {
                "one_day": [str(splits[-1]["train"])],
                f"window_{days}_days": [str(files["train"]) for files in splits],
            }
            figures = {}
            for arm, uris in arms.items():
                train = read_sampled(uris)
                model = mlp(training.task, PARAMS, training.max_epochs)
                started = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(train.drop(columns=[settings.landing.label]), train[settings.landing.label])
                fit_s = time.perf_counter() - started
                truth, answers = answer_split(model, test, settings.landing.label, training.task)
                figures[arm] = {
                    "train_rows": len(train),
                    "fit_s": round(fit_s, 2),
                    "accuracy": round(metrics_of(training.task, truth, answers)["accuracy"], 4),
                }
            results[f"drift_{step:g}_per_day"] = figures
    return {"training_window": {"days": days, "rows_per_day": rows, "test": "the newest day", **results}}
